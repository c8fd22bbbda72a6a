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
from common.errors import DataError, SettingError
from common.metrics import mse_per_image
from common.outputs import save_json, save_model
from common.pca import pca, pca_reconstruct
from common.script import finish, start
from common.stages import Stages
from common.training import backup_folder, check_finite, train_autoencoder

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
L1_WEIGHT = 1e-3  # the L1 model's penalty: this times the sum of its code's values, added to the
#                   loss
# training (the same for the three models)
EPOCHS = 6  # passes over the training images
BATCH_SIZE = 256  # images per gradient step
LEARNING_RATE = 1e-3  # Adam's step size, decayed to zero over training (cosine)
# dead units
DEAD_AFTER_IMAGES = 10000  # a unit that has not fired on this many training images in a row counts
#                            as dead
AUXILIARY_WEIGHT = 0.5  # weight of the auxiliary loss, which puts the dead units to work, beside
#                         the reconstruction's
# the trade-off between sparsity and error
FRONTIER_KS = (10, 50)  # more top-k models, beside the one with K
FRONTIER_L1_WEIGHTS = (3e-4, 3e-3)  # more L1 models, beside the one with L1_WEIGHT
FRONTIER_EPOCHS = 2  # passes over the training images for each of those
# features for a classifier
CLASSIFIER_IMAGES = None  # labelled training images for the linear classifiers (None: all)
CLASSIFIER_EPOCHS = 10  # passes of each linear classifier over them
DENSE_CODE_EPOCHS = 3  # epochs of chapter 01's autoencoder, whose 32-number code is classified
#                        beside
SEED = 0  # seeds every random draw: NumPy's, Python's and the backend's
# output
OUTPUT_DIR = None  # where figures, metrics.json and models/ go (None:
#                    outputs/10_sparse_autoencoder)

PUBLISHED = {  # Makhzani & Frey (2013), Table 1: test error (%) of logistic regression on MNIST
    #                features
    "k_sparse_k25": 1.35,  # the codes of a k-sparse autoencoder of 1,000 units, k = 25
    "raw_pixels": 7.20,  # the pixels themselves
}

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

The decoder's weights are the *dictionary*: one picture per unit. This is the idea behind the
sparse autoencoders that interpretability research trains on the activations of large networks, to
split them into features a person can name (Bricken et al. 2023; Gao et al. 2024); MNIST shows it
whole (Ng's notes, 2011; Makhzani & Frey's k-sparse autoencoders, 2013). The same 784 -> 1,000 ->
784 network is trained three ways:

- without a constraint: it copies;
- with an *L1 penalty* on the code (L1_WEIGHT x the sum of its values): its pull toward 0 is as
  strong for a small value as for a large one, so small values are pushed all the way to 0, and
  most units settle there;
- with a *top-k* code: only the K largest units of each code are kept, the rest set to 0.

The chapter then measures, in this order: units that never fire (*dead*), and a remedy for them;
each model's error and how many units an image uses, beside PCA; the trade-off between the two,
over many settings; the codes as features for a linear classifier, beside Makhzani & Frey's; and,
in pictures, the dictionaries.
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
        self.images_since_fired = self.add_weight(
            shape=(input_shape[-1],),
            initializer="zeros",
            trainable=False,
            name="images_since_fired",
        )

    def call(self, h, training=False):
        code = keep_largest(h, self.k)
        if training:
            fired = ops.any(code > 0, axis=0)
            images = ops.cast(ops.shape(h)[0], self.images_since_fired.dtype)
            self.images_since_fired.assign(ops.where(fired, 0.0, self.images_since_fired + images))
        return code

    def get_config(self):
        return super().get_config() | {"k": self.k}


@keras.saving.register_keras_serializable(package="autoencoders_by_example")
class L1Penalty(layers.Layer):
    """Passes the code through unchanged, and adds weight x the sum of its values to the loss,
    averaged over the images of the batch."""

    def __init__(self, weight: float, **kwargs):
        super().__init__(**kwargs)
        self.weight = weight

    def call(self, code):
        if self.weight:
            self.add_loss(self.weight * ops.mean(ops.sum(ops.abs(code), axis=-1)))
        return code

    def get_config(self):
        return super().get_config() | {"weight": self.weight}


def build_sparse_autoencoder(
    units: int, size: int, top_k: int | None = None, l1_weight: float = 0.0
):
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
    code = L1Penalty(l1_weight, name="code")(h)  # with l1_weight 0, the code itself, nothing added
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
is *dead*, a unit the model pays for and never uses. Gao et al. (2024) give dead units work of
their own: an *auxiliary loss* asks the dead units (those that have not fired on DEAD_AFTER_IMAGES
training images in a row) to rebuild what the live units left over, the error x - x_hat (x_hat:
the reconstruction), with the decoder's own features. Its gradient pulls them toward the images
the model rebuilds worst, where they are needed. It weighs AUXILIARY_WEIGHT beside the
reconstruction (Gao et al. give it 1/32; here, on far fewer units and images, 1/32 left 4.9 % of
the units dead on the test images, 0.5 about 1.5 %). The top-k model trains with it, and its twin
without it, to measure what it does.
"""


class DeadUnitsRebuild(layers.Layer):
    """Adds the auxiliary loss to the model's loss, AUXILIARY_WEIGHT x the mean over the batch of
    each image's mean squared difference between the error the live units left (x - x_hat, held
    fixed) and what the dead units rebuild of it; passes the reconstruction through unchanged.
    (Gao et al. keep only the largest few hundred of the dead units' values, among millions of
    units; here there are fewer dead units than that to begin with.)"""

    def __init__(
        self, top_k: TopK, decoder: layers.Dense, dead_after: int, weight: float, **kwargs
    ):
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


def with_auxiliary_loss(autoencoder: keras.Model) -> keras.Model:
    """The top-k autoencoder as it trains: image in, reconstruction out, the auxiliary loss
    added."""
    image = autoencoder.input
    h = autoencoder.get_layer("before_top_k").output
    reconstruction = autoencoder.output
    error = layers.Subtract()([layers.Flatten()(image), layers.Flatten()(reconstruction)])
    top_k = autoencoder.get_layer("top_k")
    rebuild = DeadUnitsRebuild(
        top_k, autoencoder.get_layer("decoder"), DEAD_AFTER_IMAGES, AUXILIARY_WEIGHT
    )
    return keras.Model(image, rebuild([h, error, reconstruction]))


# %%
"""
## Setup

Apply the command line's overrides to the constants above (`--help` lists them), check them,
create and check the output folder, and seed every random generator with SEED. Each training is a
*stage* (see 05): after Ctrl-C, the same command loads the finished ones.
"""
started = time.perf_counter()
settings, out = start(
    globals(), checks={"K": "count", "FRONTIER_KS": "count", "FRONTIER_L1_WEIGHTS": "non_negative"}
)
for name in ("K", "FRONTIER_KS"):
    if max(np.atleast_1d(settings[name]), default=0) > CODE_DIM:
        raise SettingError(
            f"{name}={settings[name]!r}: the code has {CODE_DIM} units (CODE_DIM); at most that"
        )
stages = Stages(backup_folder(out, settings, "stages"), SEED)  # Ctrl-C, then rerun: resumes here

# %%
"""
## Prepare the data

The training images, without their labels, train the autoencoders; the labels of the first
CLASSIFIER_IMAGES train the linear classifiers. The test images give every figure.
"""
data = load_data(DATA, DATASET, TRAIN_LIMIT, IMAGE_SIZE)
print(f"data: {data.describe()}")
if not data.labelled:
    raise DataError(
        f"{DATA or data.source}: has no labels; the linear classifiers need one sub-folder per "
        "class"
    )
x_train = data.x_train
x_test = data.x_test

# %%
"""
## Train the autoencoders

The same network, loss (squared error per pixel) and optimizer (Adam, its step size decayed to
zero, cosine) for all; only the code's constraint differs. The top-k model trains with the
auxiliary loss, and once without it.
"""


def train_weights(top_k, l1_weight, epochs, auxiliary, resume_dir):
    """An autoencoder trained on the training images: its weights, loss history and seconds."""
    autoencoder, _ = build_sparse_autoencoder(CODE_DIM, IMAGE_SIZE, top_k, l1_weight)
    steps = epochs * math.ceil(len(x_train) / BATCH_SIZE)
    optimizer = keras.optimizers.Adam(
        keras.optimizers.schedules.CosineDecay(LEARNING_RATE, decay_steps=steps)
    )
    # the same weights either way
    model = with_auxiliary_loss(autoencoder) if auxiliary else autoencoder
    # under TensorFlow, XLA made these steps slower on a CPU
    use_xla = jit_compile(on_tensorflow=False)
    model.compile(optimizer=optimizer, loss="mse", jit_compile=use_xla)
    history, seconds = train_autoencoder(
        model, x_train, x_train, epochs=epochs, batch_size=BATCH_SIZE, resume_dir=resume_dir
    )
    return autoencoder.get_weights(), history, seconds


def load_or_train(name, top_k=None, l1_weight=0.0, epochs=EPOCHS, auxiliary=False):
    """The autoencoder and encoder of stage `name`, trained now or loaded, and its training."""
    print(f"\n== {name}: {epochs} epochs ==")
    weights, history, seconds = stages.run(
        name, train_weights, top_k, l1_weight, epochs, auxiliary, stages.subfolder(name)
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
all: dead on the test images. (While it trains, the top-k model calls a unit dead by another
measure, the training images since it last fired: see the section above.) PCA with as many
components as the model's L0 (rounded) is the linear reference: it too rebuilds each image from
that many numbers.
"""


def codes_of(encoder, images):
    return encoder.predict(images, batch_size=1000, verbose=0)


pca_mean, pca_directions = pca(x_train, x_train[0].size)  # all of them, the most important first


def pca_test_mse(components):
    rebuilt = pca_reconstruct(x_test, pca_mean, pca_directions[:components])
    return float(mse_per_image(x_test, rebuilt).mean())


def test_figures(trained):
    """The figures of one trained model (a dict from `load_or_train`), on the test images."""
    reconstruction = trained["autoencoder"].predict(x_test, batch_size=1000, verbose=0)
    active = codes_of(trained["encoder"], x_test) > 0
    l0 = float(active.sum(axis=1).mean())
    dead = ~active.any(axis=0)
    components = max(1, round(l0))
    return {
        "test_mse": float(mse_per_image(x_test, reconstruction).mean()),
        "mean_active_units": l0,
        "dead_units": int(dead.sum()),
        "dead_fraction": float(dead.mean()),
        "pca_components": components,
        "pca_test_mse": pca_test_mse(components),
    }


results = {name: test_figures(trained) for name, trained in models.items()}
print(f"\nTest images ({len(x_test):,}), {CODE_DIM} code units:")
print(f"{'':<36}{'MSE':>9}{'active units':>14}{'dead units':>14}{'PCA, as many':>14}")
for name, r in results.items():
    dead = f"{r['dead_units']} ({r['dead_fraction']:.1%})"
    print(
        f"{display_names[name]:<36}{r['test_mse']:>9.5f}{r['mean_active_units']:>14.1f}{dead:>14}{r['pca_test_mse']:>14.5f}"
    )

# %%
"""
## The trade-off: how many units an image uses, against how well it is rebuilt

More top-k models (FRONTIER_KS) and more L1 models (FRONTIER_L1_WEIGHTS), each trained for
FRONTIER_EPOCHS, draw the *frontier*: the error at each mean number of active units. PCA's curve is
the linear reference. Where a sparse code beats it (top-k at 10 and 25 units, here), it is because
each image picks its own units, where PCA gives every image the same components; with many units
(50), PCA is ahead. The extra points train for fewer epochs than the chapter's
two main models, so they lie a little above where a full training would put them. Last, the L1
model's error is set beside the top-k frontier's at as many active units: the price of getting
sparsity from a penalty, which also shrinks the values it keeps, rather than from choosing units.
"""
frontier = {"topk": [results["topk"] | {"k": K, "epochs": EPOCHS}]}
frontier["l1"] = [results["l1"] | {"l1_weight": L1_WEIGHT, "epochs": EPOCHS}]
for k in FRONTIER_KS:
    point = test_figures(
        load_or_train(f"topk_{k}", top_k=k, epochs=FRONTIER_EPOCHS, auxiliary=True)
    )
    frontier["topk"].append(point | {"k": k, "epochs": FRONTIER_EPOCHS})
for weight in FRONTIER_L1_WEIGHTS:
    point = test_figures(load_or_train(f"l1_{weight:g}", l1_weight=weight, epochs=FRONTIER_EPOCHS))
    frontier["l1"].append(point | {"l1_weight": weight, "epochs": FRONTIER_EPOCHS})
for points in frontier.values():
    points.sort(key=lambda p: p["mean_active_units"])
print(f"\n{'':<24}{'epochs':>8}{'active units':>14}{'MSE':>9}{'PCA, as many':>14}")
for family, points in frontier.items():
    for p in points:
        label = f"top-k, k = {p['k']}" if family == "topk" else f"L1 penalty {p['l1_weight']:g}"
        print(
            f"{label:<24}{p['epochs']:>8}{p['mean_active_units']:>14.1f}{p['test_mse']:>9.5f}{p['pca_test_mse']:>14.5f}"
        )
log_topk_l0 = np.log([p["mean_active_units"] for p in frontier["topk"]])
topk_mse = [p["test_mse"] for p in frontier["topk"]]
l1_l0 = results["l1"]["mean_active_units"]
# the top-k frontier's error at the L1 model's number of active units, read off the straight line
# between its two nearest points on a log scale (beyond the frontier's ends: the nearest end's
# error)
l1_over_topk = results["l1"]["test_mse"] / np.interp(np.log(l1_l0), log_topk_l0, topk_mse)
print(
    f"the L1 model ({l1_l0:.1f} active units) errs {l1_over_topk:.2f} times the top-k frontier at "
    "as many units"
)

# %%
"""
## Features for a classifier

Are the sparse units features a classifier can use? A linear classifier (softmax regression: one
dense layer of 10 scores) is trained on the frozen codes of each encoder, standardized (see
`linear_classifier_error`), and tested on the test images' codes; beside it, the same classifier
on the raw pixels and on the 32-number code of chapter 01's autoencoder. Makhzani & Frey (2013)
trained logistic regression on the codes of a k-sparse autoencoder of 1,000 units with k = 25:
1.35 % test error, against 7.20 % on the pixels. Expect this chapter's codes to stay well above
their 1.35 %: their autoencoder trained far longer, with its encoder tied to its decoder and k
lowered step by step, where this one trains for EPOCHS passes.
"""
n_labelled = len(x_train) if CLASSIFIER_IMAGES is None else min(CLASSIFIER_IMAGES, len(x_train))
y_labelled = data.y_train[:n_labelled]


def build_dense_autoencoder(size):
    """Chapter 01's autoencoder, 784-512-256-32-256-512-784, and its encoder (image -> 32
    numbers)."""
    image = keras.Input(shape=(size, size))
    h = layers.Flatten()(image)
    h = layers.Dense(512, activation="relu")(h)
    h = layers.Dense(256, activation="relu")(h)
    code = layers.Dense(32, name="code")(h)
    h = layers.Dense(256, activation="relu")(code)
    h = layers.Dense(512, activation="relu")(h)
    h = layers.Dense(size * size, activation="sigmoid")(h)
    reconstruction = layers.Reshape((size, size))(h)
    return keras.Model(image, reconstruction), keras.Model(image, code)


def train_dense_autoencoder():
    autoencoder, _ = build_dense_autoencoder(IMAGE_SIZE)
    steps = DENSE_CODE_EPOCHS * math.ceil(len(x_train) / 256)  # chapter 01's batch size, 256
    # chapter 01's step size
    optimizer = keras.optimizers.Adam(keras.optimizers.schedules.CosineDecay(2e-3, steps))
    # chapter 01's dense network is fast with XLA on every backend
    autoencoder.compile(optimizer=optimizer, loss="binary_crossentropy", jit_compile=jit_compile())
    train_autoencoder(autoencoder, x_train, x_train, epochs=DENSE_CODE_EPOCHS, batch_size=256)
    return autoencoder.get_weights()


def linear_classifier_error(train_features, test_features):
    """Test error (%) of softmax regression on `train_features`, standardized as a whole: each
    feature's mean subtracted, then all divided by one number, the standard deviation of them all.
    (Dividing each feature by its own deviation would blow the units that rarely fire up into
    large, noisy features, and the classifier would learn them by heart.)"""
    mean = train_features.mean(axis=0)
    scale = train_features.std()
    x = (train_features - mean) / scale
    softmax = layers.Dense(len(data.class_names), activation="softmax")
    classifier = keras.Sequential([keras.Input((x.shape[1],)), softmax])
    steps = CLASSIFIER_EPOCHS * math.ceil(len(x) / 256)  # batches of 256
    # Adam's usual step size
    optimizer = keras.optimizers.Adam(keras.optimizers.schedules.CosineDecay(1e-3, steps))
    classifier.compile(
        optimizer=optimizer, loss="sparse_categorical_crossentropy", jit_compile=jit_compile()
    )
    history = classifier.fit(x, y_labelled, epochs=CLASSIFIER_EPOCHS, batch_size=256, verbose=0)
    check_finite(history.history)
    scores = classifier.predict((test_features - mean) / scale, batch_size=2000, verbose=0)
    return float(100 * np.mean(scores.argmax(axis=1) != data.y_test))


print(f"\n== Linear classifiers on {n_labelled:,} labelled training images ==")
dense_autoencoder, dense_encoder = build_dense_autoencoder(IMAGE_SIZE)
dense_autoencoder.set_weights(stages.run("dense_autoencoder", train_dense_autoencoder))
encoders = {
    "topk": models["topk"]["encoder"],
    "l1": models["l1"]["encoder"],
    "unconstrained": models["unconstrained"]["encoder"],
    "dense_code": dense_encoder,
}
classifier_error = {}
for name, encoder in encoders.items():
    train_codes = codes_of(encoder, x_train[:n_labelled])
    classifier_error[name] = stages.run(
        f"classifier_{name}", linear_classifier_error, train_codes, codes_of(encoder, x_test)
    )
pixels = x_train[:n_labelled].reshape(n_labelled, -1)
classifier_error["pixels"] = stages.run(
    "classifier_pixels", linear_classifier_error, pixels, x_test.reshape(len(x_test), -1)
)
dense_code_label = f"chapter 01's code, 32 numbers ({DENSE_CODE_EPOCHS} epochs)"
classifier_labels = display_names | {"dense_code": dense_code_label, "pixels": "raw pixels"}
print(f"\nLinear classifier, test error (%) on {len(x_test):,} test images:")
for name, error in classifier_error.items():
    print(f"  {classifier_labels[name]:<40}{error:>7.2f}")
print(f"  {'Makhzani & Frey (2013): k-sparse, k = 25':<40}{PUBLISHED['k_sparse_k25']:>7.2f}")
print(f"  {'Makhzani & Frey (2013): raw pixels':<40}{PUBLISHED['raw_pixels']:>7.2f}")

# %%
"""
## Visualize and save

The dictionaries: the decoder features of the 64 units that fire most often on the test images,
for each model (mid-grey: 0, white: positive, black: negative). What to look for: without a
constraint the features are noise, as the code spreads every image over all its units; with the
L1 penalty most are whole digits, a template for each way of writing one; with top-k, fainter
digits and strokes that an image adds up, and a few units that look like noise and fire on almost
every image. Then a test image rebuilt one feature at a time from its active units (at most K),
the largest first; the frontier; the losses. Each autoencoder is saved as `models/<name>.keras` (a
28x28 image in, its reconstruction out) and its encoder as `models/<name>_encoder.keras` (image in,
code out). They hold this chapter's own layers (`L1Penalty`, and `TopK` in the top-k model): to
load them elsewhere, run `common.script.chapter_definitions("10_sparse_autoencoder.py")` first,
which defines them without running the chapter.
"""


def most_used_features(model, n=64):
    """The decoder features (pixels, n) of the n units active on the most test images."""
    usage = (codes_of(model["encoder"], x_test) > 0).mean(axis=0)
    busiest = np.argsort(-usage)[:n]
    return model["autoencoder"].get_layer("decoder").get_weights()[0][busiest].T


plotting.filter_grids(
    out / "dictionary.png",
    {
        "no constraint": most_used_features(models["unconstrained"]),
        f"L1 penalty {L1_WEIGHT:g}": most_used_features(models["l1"]),
        f"top-k, k = {K}": most_used_features(models["topk"]),
    },
    n=64,
)


def rebuild_one_unit_at_a_time(code, features, bias, shown_steps=8):
    """Adds an image's active units to the decoder's bias one at a time, the largest first.
    Returns two rows of pictures, {caption: picture}: the features added (of the first
    `shown_steps` units, and of the last) and the sum after each."""
    order = np.argsort(-code)[: int((code > 0).sum())]  # the active units, largest value first
    partial_sum = bias.copy()
    features_added = {}
    sums = {}
    for count, unit in enumerate(order, start=1):
        partial_sum = partial_sum + code[unit] * features[unit]
        if count <= shown_steps or count == len(order):
            # 0 as mid-grey; x 3, as a feature's pixels are small
            feature_picture = 0.5 + 3 * features[unit]
            features_added[f"unit {unit}\nx {code[unit]:.2f}"] = np.clip(feature_picture, 0, 1)
            sums[f"{count} unit{'s' if count > 1 else ''}"] = np.clip(partial_sum, 0, 1)
    return features_added, sums


shown = x_test[:1]  # the first test image
topk_code = codes_of(models["topk"]["encoder"], shown)[0]
decoder_features, decoder_bias = models["topk"]["autoencoder"].get_layer("decoder").get_weights()
features_added, sums = rebuild_one_unit_at_a_time(topk_code, decoder_features, decoder_bias)
n_active = int((topk_code > 0).sum())
plotting.level_rows(
    out / "one_feature_at_a_time.png",
    {
        "its features\n(mid-grey: 0)": features_added,
        "the sum so far": sums,
        "the image": {"test image": shown[0]},
    },
    title=f"A test image rebuilt from the {n_active} active units of its top-k code, the largest first",
)

# PCA's numbers of components, log-spaced
components = np.unique(np.geomspace(2, 300, 12).round().astype(int))
plotting.xy_curves(
    out / "frontier.png",
    {
        "top-k": (
            [p["mean_active_units"] for p in frontier["topk"]],
            [p["test_mse"] for p in frontier["topk"]],
        ),
        "L1 penalty": (
            [p["mean_active_units"] for p in frontier["l1"]],
            [p["test_mse"] for p in frontier["l1"]],
        ),
        "PCA, as many components": (components, [pca_test_mse(c) for c in components]),
    },
    xlabel="units (components) used by an image",
    ylabel="test mean squared error",
    title=f"Sparsity against error, test images (k = {K}, L1 {L1_WEIGHT:g}: {EPOCHS} epochs; others {FRONTIER_EPOCHS})",
    logx=True,
    logy=True,
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
    "n_classifier_train": n_labelled,
    "code_dim": CODE_DIM,
    "models": results,
    "frontier": frontier,
    "l1_error_over_topk_frontier": float(l1_over_topk),
    "classifier_test_error_pct": classifier_error,
    "published_classifier_test_error_pct": PUBLISHED,
    "loss_history": {name: model["history"] for name, model in models.items()},
    "seconds": {name: round(model["seconds"], 1) for name, model in models.items()},
}
metrics["seconds"]["total"] = round(time.perf_counter() - started, 1)
save_json(out / "metrics.json", metrics)
stages.finished()
topk = results["topk"]
finish(
    out,
    f"top-k (k = {K}) test MSE {topk['test_mse']:.5f} against PCA-{topk['pca_components']}'s "
    f"{topk['pca_test_mse']:.5f}, {topk['dead_fraction']:.1%} dead units, "
    f"linear classifier {classifier_error['topk']:.2f} %",
    started,
)
