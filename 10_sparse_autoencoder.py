r"""
Title: Sparse autoencoders: more code units than pixels, and a dictionary of features you can name
Description: Give the code more units than the image has pixels, and only sparsity keeps it from
    copying: train an autoencoder without a constraint, one with an L1 penalty on its code and one
    that keeps only the k largest units of each code (top-k), and see what their units mean.
Run: python 10_sparse_autoencoder.py                                       (the full run)
     python 10_sparse_autoencoder.py --train_limit=5000 --epochs=10 --batch_size=64 \
         --dead_after_images=2000                                          (a quick look)
"""

# %%
import math
import time

from common import plotting
from common.data import load_data
from common.devices import describe, jit_compile
from common.errors import SettingError
from common.metrics import mse_per_image
from common.outputs import save_json, save_model
from common.pca import pca, pca_reconstruct
from common.script import finish, start
from common.stages import Stages
from common.training import backup_folder, train_autoencoder

import keras
import numpy as np
from keras import layers, ops

# --- hyperparameters: edit here, or override on the command line (--k=10) ---
# data
DATASET = "mnist"  # "mnist" or "fashion_mnist" (ignored when DATA is set)
DATA = None  # an .npz, a folder of MNIST IDX files, or a folder of your own images (see the README)
IMAGE_SIZE = 28  # images are made grey squares of IMAGE_SIZE x IMAGE_SIZE pixels
TRAIN_LIMIT = None  # use only the first N training images (None: all 60,000)
# model
CODE_DIM = 1000  # units in the code: more than the 784 pixels of an image
K = 25  # the top-k model keeps the K largest units of each code, and sets the others to 0
L1_WEIGHT = 1e-3  # the L1 model's penalty: this x the sum of its code's values, added to the loss
# training (the same for every model)
EPOCHS = 6  # passes over the training images
BATCH_SIZE = 256  # images per gradient step
LEARNING_RATE = 1e-3  # Adam's step size, decayed to zero over training (cosine)
SEED = 0  # seeds every random draw: NumPy's, Python's and the backend's
# dead units
DEAD_AFTER_IMAGES = 10000  # a unit that fired on none of this many training images in a row: dead
AUXILIARY_WEIGHT = 0.5  # weight of the auxiliary loss, which puts the dead units to work
# output
OUTPUT_DIR = None  # where figures, metrics.json and models/ go (None:
#                    outputs/10_sparse_autoencoder)

# %%
"""
## Introduction

Chapter 01 made the code *narrower* than the image, and the squeeze forced the autoencoder to keep
what matters. Make the code *wider* than the image (1,000 units for 784 pixels) and nothing is
squeezed: an autoencoder can rebuild every image by spreading it over all its units, and its units
mean nothing in particular. What keeps such a code useful is *sparsity*: each image may use only a
few units. Then each unit must stand for something that many images share (a stroke, a loop, a
piece of a digit), and an image is rebuilt as the sum of a few of these features:

    image  ~  bias  +  sum over its active units i of  (unit i's value) x (unit i's feature)

The decoder's weights are the *dictionary*: one picture per unit. Sparse autoencoders split the
activations of large networks into features a person can name (Bricken et al. 2023; Gao et al.
2024); MNIST shows the idea whole (Makhzani & Frey's k-sparse autoencoders, 2013). The same 784 ->
1,000 -> 784 network is trained three ways:

- without a constraint: it copies;
- with an *L1 penalty* on the code (L1_WEIGHT x the sum of its values): its pull toward 0 is as
  strong for a small value as for a large one, so small values are pushed all the way to 0, and
  most units settle there;
- with a *top-k* code: only the K largest units of each code are kept, the rest set to 0.

Each is scored beside PCA with as many components as the units an image uses, and shown by its
dictionary. `further/10_sparse_frontier.py` goes on from the models saved here: sparsity against
error over more k and L1 weights, and the codes as features for a classifier (Makhzani & Frey's).
"""


def keep_largest(h, k):
    """`h` with the k largest values of each row kept and the others set to 0 (of values tied with
    the k-th largest, all are kept: for the positive values of a code, a tie has probability 0)."""
    largest, _ = ops.top_k(h, k)  # the k largest values of each row, largest first
    # 1 where a value is at least the k-th largest, else 0
    kept = ops.cast(h >= largest[:, -1:], h.dtype)
    return h * kept  # the gradient flows through the kept values only


@keras.saving.register_keras_serializable(package="autoencoders_by_example")
class TopK(layers.Layer):
    """Keeps the k largest units of each code and sets the others to 0. While the model trains, it
    also counts, for every unit, the training images since the unit last fired: the dead units
    are those it has not fired for a long time (see "Dead units, and a remedy")."""

    def __init__(self, k: int, **kwargs):
        super().__init__(**kwargs)
        self.k = k

    def build(self, input_shape):
        units = input_shape[-1]
        self.images_since_fired = self.add_weight((units,), initializer="zeros", trainable=False)

    def call(self, h, training=False):
        code = keep_largest(h, self.k)
        if training:
            fired = ops.any(code > 0, axis=0)
            images = ops.cast(ops.shape(h)[0], self.images_since_fired.dtype)
            self.images_since_fired.assign(ops.where(fired, 0.0, self.images_since_fired + images))
        return code

    def get_config(self):
        return super().get_config() | {"k": self.k}


def build_sparse_autoencoder(units, size, top_k=None, l1_weight=0.0):
    """An autoencoder of size x size images with a code of `units` units, and its encoder (image ->
    code). The code is the ReLU of a linear layer, then its `top_k` largest units only (None: all),
    with an L1 penalty of `l1_weight` on it. The decoder is linear, each unit's dictionary feature
    (its row of the decoder's weights) kept at length 1, so that the penalty cannot shrink the code
    and grow the features instead. The encoder starts as the decoder's transpose (Gao et al.)."""
    image = keras.Input(shape=(size, size), name="image")
    pixels = layers.Flatten()(image)
    h = layers.Dense(units, name="encoder_dense")(pixels)
    h = layers.ReLU(name="before_top_k")(h)
    if top_k is not None:
        h = TopK(top_k, name="top_k")(h)
    # the code as it is; adds l1_weight x the sum of its values to the loss, averaged over the batch
    code = layers.ActivityRegularization(l1=l1_weight, name="code")(h)
    decoder = layers.Dense(
        size * size, name="decoder", kernel_constraint=keras.constraints.UnitNorm(axis=1)
    )
    reconstruction = layers.Reshape((size, size), name="reconstruction")(decoder(code))
    autoencoder = keras.Model(image, reconstruction, name="autoencoder")
    encoder = keras.Model(image, code, name="encoder")  # shares its layers with the autoencoder
    features = keras.random.normal((units, size * size))
    features = ops.convert_to_numpy(features / ops.norm(features, axis=1, keepdims=True))
    decoder.set_weights([features, np.zeros(size * size, np.float32)])
    autoencoder.get_layer("encoder_dense").set_weights([features.T, np.zeros(units, np.float32)])
    return autoencoder, encoder


# %%
"""
## Dead units, and a remedy

A top-k unit that is never among the k largest gets no gradient, and nothing brings it back: it
is *dead*, a unit the model pays for and never uses. Gao et al. (2024) give dead units work: an
*auxiliary loss* asks the units that have not fired on DEAD_AFTER_IMAGES training images in a row
to rebuild, with the decoder's own features, what the live units left over: the error x - x_hat
(x_hat: the reconstruction). Its gradient pulls them toward the images rebuilt worst. It weighs
AUXILIARY_WEIGHT beside the reconstruction (Gao et al.: 1/32; see docs/10_sparse_autoencoder.md).
The top-k model trains with it, and its twin without it, to measure what it does.
"""


class DeadUnitsRebuild(layers.Layer):
    """Adds the auxiliary loss to the model's loss, `weight` x the mean over the batch of each
    image's mean squared difference between the error the live units left (x - x_hat, held fixed)
    and what the dead units rebuild of it; passes the reconstruction through unchanged."""

    def __init__(self, top_k, decoder, dead_after, weight, **kwargs):
        super().__init__(**kwargs)
        self.top_k = top_k
        self.decoder = decoder
        self.dead_after = dead_after
        self.weight = weight

    def call(self, inputs):
        h, error, reconstruction = inputs  # the code before the top-k, x - x_hat, and x_hat
        dead = ops.cast(self.top_k.images_since_fired > self.dead_after, h.dtype)
        dead_code = h * dead  # the dead units' values; every other unit's set to 0
        rebuilt = ops.matmul(dead_code, self.decoder.kernel)  # the same features, no bias
        per_image = ops.mean(ops.square(ops.stop_gradient(error) - rebuilt), axis=-1)
        self.add_loss(self.weight * ops.mean(per_image))
        return reconstruction


def with_auxiliary_loss(autoencoder: keras.Model, dead_after: int, weight: float) -> keras.Model:
    """The top-k autoencoder as it trains: image in, reconstruction out, the auxiliary loss on the
    units that have not fired for `dead_after` images added with `weight`."""
    image = autoencoder.input
    h = autoencoder.get_layer("before_top_k").output
    reconstruction = autoencoder.output
    error = layers.Subtract()([layers.Flatten()(image), layers.Flatten()(reconstruction)])
    top_k = autoencoder.get_layer("top_k")
    rebuild = DeadUnitsRebuild(top_k, autoencoder.get_layer("decoder"), dead_after, weight)
    return keras.Model(image, rebuild([h, error, reconstruction]))


# %%
"""
## Setup

Apply the command line's overrides to the constants above (`--help` lists them), check them,
create and check the output folder, and seed every random generator with SEED. Each training is a
*stage* (see 05): after Ctrl-C, the same command loads the finished ones.
"""
started = time.perf_counter()
settings, out = start(globals(), checks={"K": "count"})
if K > CODE_DIM:
    raise SettingError(f"K={K}: the code has {CODE_DIM} units (CODE_DIM); at most that")
stages = Stages(backup_folder(out, settings, "stages"), SEED)  # Ctrl-C, then rerun: resumes here

# %%
"""
## Prepare the data

The training images, without their labels, train the autoencoders; the test images score them.
"""
data = load_data(DATA, DATASET, TRAIN_LIMIT, IMAGE_SIZE)
print(f"data: {data.describe()}")
x_train = data.x_train
x_test = data.x_test

# %%
"""
## Train the autoencoders

The same network, loss (squared error per pixel) and optimizer (Adam, its step size decayed to
zero, cosine) for all; only the code's constraint differs. The top-k model trains with the
auxiliary loss, and once without it.
"""


def train_weights(top_k, l1_weight, auxiliary, resume_dir):
    """An autoencoder trained on the training images: its weights, loss history and seconds."""
    autoencoder, _ = build_sparse_autoencoder(CODE_DIM, IMAGE_SIZE, top_k, l1_weight)
    steps = EPOCHS * math.ceil(len(x_train) / BATCH_SIZE)
    schedule = keras.optimizers.schedules.CosineDecay(LEARNING_RATE, decay_steps=steps)
    model = autoencoder  # the same weights either way
    if auxiliary:
        model = with_auxiliary_loss(autoencoder, DEAD_AFTER_IMAGES, AUXILIARY_WEIGHT)
    # under TensorFlow, XLA made these steps slower on a CPU
    use_xla = jit_compile(on_tensorflow=False)
    model.compile(optimizer=keras.optimizers.Adam(schedule), loss="mse", jit_compile=use_xla)
    history, seconds = train_autoencoder(
        model, x_train, x_train, epochs=EPOCHS, batch_size=BATCH_SIZE, resume_dir=resume_dir
    )
    return autoencoder.get_weights(), history, seconds


def load_or_train(name, top_k=None, l1_weight=0.0, auxiliary=False):
    """The autoencoder and encoder of stage `name`, trained now or loaded, and its training."""
    print(f"\n== {name}: {EPOCHS} epochs ==")
    weights, history, seconds = stages.run(
        name, train_weights, top_k, l1_weight, auxiliary, stages.subfolder(name)
    )
    autoencoder, encoder = build_sparse_autoencoder(CODE_DIM, IMAGE_SIZE, top_k, l1_weight)
    autoencoder.set_weights(weights)
    return {"autoencoder": autoencoder, "encoder": encoder, "history": history, "seconds": seconds}


models = {
    "unconstrained": load_or_train("unconstrained"),
    "l1": load_or_train("l1", l1_weight=L1_WEIGHT),
    "topk": load_or_train("topk", top_k=K, auxiliary=True),
    "topk_without_auxiliary_loss": load_or_train("topk_without_auxiliary_loss", top_k=K),
}
display_names = {
    "unconstrained": "no constraint",
    "l1": f"L1 penalty {L1_WEIGHT:g}",
    "topk": f"top-k, k = {K}",
    "topk_without_auxiliary_loss": f"top-k, k = {K}, no auxiliary loss",
}

# %%
"""
## Evaluate: error, active units, dead units

For every model, on the test images: the mean squared error of the reconstruction; the mean number
of units active (above 0) in an image's code, its L0; and how many units fire on no test image at
all (while it trains, the top-k model counts the images since a unit last fired instead). PCA
with as many components as the model's L0 (rounded) is the linear reference: it too rebuilds each
image from that many numbers, but from the same components for every image, where a sparse code
lets each image pick its own units.
"""


def codes_of(encoder, images):
    return encoder.predict(images, batch_size=1000, verbose=0)


pca_mean, pca_directions = pca(x_train, x_train[0].size)  # all of them, the most important first


def test_figures(trained):
    """The figures of one trained model (a dict from `load_or_train`), on the test images."""
    reconstruction = trained["autoencoder"].predict(x_test, batch_size=1000, verbose=0)
    active = codes_of(trained["encoder"], x_test) > 0
    l0 = float(active.sum(axis=1).mean())
    dead = ~active.any(axis=0)
    components = max(1, round(l0))
    pca_rebuilt = pca_reconstruct(x_test, pca_mean, pca_directions[:components])
    return {
        "test_mse": float(mse_per_image(x_test, reconstruction).mean()),
        "mean_active_units": l0,
        "dead_units": int(dead.sum()),
        "dead_fraction": float(dead.mean()),
        "pca_components": components,
        "pca_test_mse": float(mse_per_image(x_test, pca_rebuilt).mean()),
    }


results = {name: test_figures(trained) for name, trained in models.items()}
print(f"\nTest images ({len(x_test):,}), {CODE_DIM} code units:")
print(f"{'':<36}{'MSE':>9}{'active units':>14}{'dead units':>14}{'PCA, as many':>14}")
for name, r in results.items():
    dead = f"{r['dead_units']} ({r['dead_fraction']:.1%})"
    row = f"{display_names[name]:<36}{r['test_mse']:>9.5f}{r['mean_active_units']:>14.1f}"
    print(f"{row}{dead:>14}{r['pca_test_mse']:>14.5f}")

# %%
"""
## Visualize and save

The dictionaries: the decoder features of the 36 units that fire most often on the test images,
for each model, each scaled to its own largest value (mid-grey: 0, white: positive, black:
negative). Without a constraint they are noise, as the code spreads every image over all its
units; with the L1 penalty most are whole digits, a template for each way of writing one; with
top-k, fainter digits and strokes that an image adds up. Then a test image rebuilt one feature at
a time from its active units, the largest first; and the losses. The models go to `models/`
(`<name>.keras`: image in, reconstruction out; `<name>_encoder.keras`: image in, code out); to
load them, `common.script.chapter_definitions("10_sparse_autoencoder.py")` defines `TopK`.
"""


def most_used_features(model, side=6):
    """The decoder features of the side x side units active on the most test images, as a (side,
    side, IMAGE_SIZE, IMAGE_SIZE) grid of pictures in [0, 1]."""
    usage = (codes_of(model["encoder"], x_test) > 0).mean(axis=0)
    busiest = np.argsort(-usage)[: side * side]
    features = model["autoencoder"].get_layer("decoder").get_weights()[0][busiest]
    largest = np.abs(features).max(axis=1, keepdims=True)
    pictures = 0.5 + features / (2 * largest)  # 0 as mid-grey, each to its own largest value
    return pictures.reshape(side, side, IMAGE_SIZE, IMAGE_SIZE)


plotting.image_grids(
    out / "dictionary.png",
    {
        "no constraint": most_used_features(models["unconstrained"]),
        f"L1 penalty {L1_WEIGHT:g}": most_used_features(models["l1"]),
        f"top-k, k = {K}": most_used_features(models["topk"]),
    },
    title="The features of the 36 units each model uses most",
)


shown = x_test[:1]  # the first test image
code = codes_of(models["topk"]["encoder"], shown)[0]
features, bias = models["topk"]["autoencoder"].get_layer("decoder").get_weights()
order = np.argsort(-code)[: int((code > 0).sum())]  # the active units, largest value first
partial_sum = bias
features_added = {}
sums = {}
for count, unit in enumerate(order, start=1):
    partial_sum = partial_sum + code[unit] * features[unit]
    if count <= 5 or count == len(order):  # the first five units, and the last
        feature_picture = 0.5 + 3 * features[unit]  # 0 as mid-grey; x 3, as its pixels are small
        features_added[f"unit {unit}\nx {code[unit]:.2f}"] = np.clip(feature_picture, 0, 1)
        sums[f"{count} unit{'s' if count > 1 else ''}"] = np.clip(partial_sum, 0, 1)
plotting.level_rows(
    out / "one_feature_at_a_time.png",
    {
        "its features\n(mid-grey: 0)": features_added,
        "the sum so far": sums,
        "the image": {"test image": shown[0]},
    },
    title=f"A test image rebuilt from the {len(order)} active units of its top-k code,\n"
    "the largest first",
)
plotting.loss_curves(
    out / "loss.png",
    {display_names[name]: model["history"] for name, model in models.items()},
    ylabel="squared error per pixel (+ the auxiliary loss, for top-k)",
)

(out / "models").mkdir(exist_ok=True)
for name in ("unconstrained", "l1", "topk"):
    save_model(models[name]["autoencoder"], out / "models" / f"{name}.keras")
    save_model(models[name]["encoder"], out / "models" / f"{name}_encoder.keras")

metrics = {
    "settings": settings,
    "keras": describe(),
    "data": data.source,
    "n_train": len(x_train),
    "n_test": len(x_test),
    "models": results,
    "loss_history": {name: model["history"] for name, model in models.items()},
    "seconds": {name: round(model["seconds"], 1) for name, model in models.items()},
}
metrics["seconds"]["total"] = round(time.perf_counter() - started, 1)
save_json(out / "metrics.json", metrics)
stages.finished()
topk = results["topk"]
headline = f"top-k (k = {K}) test MSE {topk['test_mse']:.5f}, PCA-{topk['pca_components']}'s"
finish(out, f"{headline} {topk['pca_test_mse']:.5f}; {topk['dead_fraction']:.1%} dead", started)
