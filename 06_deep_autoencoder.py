r"""
Title: A deep autoencoder: 30 numbers per image, against PCA
Description: Pretrain a 784-1000-500-250-30 encoder one layer at a time as denoising autoencoders,
    unroll it with its decoders into one deep autoencoder, fine-tune it as a whole, and compare its
    30-number codes with PCA's 30 components (Hinton & Salakhutdinov 2006).
Run: python 06_deep_autoencoder.py                                           (the full run)
     python 06_deep_autoencoder.py --train_limit=5000 --pretrain_epochs=3 \
         --pretrain_batch_size=32 --epochs=20 --batch_size=32                (a quick look)
"""

# %%
import math
import time
from typing import NamedTuple

from common import plotting
from common.corruption import Corruption
from common.data import load_data
from common.devices import describe, jit_compile
from common.metrics import mse_per_image
from common.outputs import save_json, save_model
from common.pca import pca, pca_reconstruct
from common.script import finish, start
from common.stages import Stages
from common.training import backup_folder, train_autoencoder

import keras
import numpy as np
from keras import layers

# --- hyperparameters: edit here, or override on the command line (--epochs=10) ---
# data
DATASET = "mnist"  # "mnist" or "fashion_mnist" (ignored when DATA is set)
DATA = None  # an .npz, a folder of MNIST IDX files, or a folder of your own images (see the README)
IMAGE_SIZE = 28  # images are made grey squares of IMAGE_SIZE x IMAGE_SIZE pixels
TRAIN_LIMIT = None  # use only the first N training images (None: all 60,000)
# model
HIDDEN_UNITS = (1000, 500, 250)  # widths of the encoder's pretrained layers, bottom to top; the
#                                  decoder mirrors them
CODE_DIM = 30  # size of the code: a linear layer on top, pretrained like the others (2: a map you
#                can plot)
# greedy layer-wise pretraining
MASKING = 0.5  # fraction of the pixels set to 0 in layer 1's input while it is pretrained
CODE_MASKING = 0.25  # fraction of the hidden values (the layer below's output) set to 0 in the
#                      input of layers 2 to 4
PRETRAIN_EPOCHS = 20  # passes over the training images, for each layer
PRETRAIN_BATCH_SIZE = 256  # examples per gradient step, in pretraining
PRETRAIN_LEARNING_RATE = 1e-3  # Adam's step size, decayed to zero over each layer's training
#                                (cosine)
# fine-tuning the unrolled autoencoder
EPOCHS = 40  # passes over the training images
BATCH_SIZE = 256  # images per gradient step
LEARNING_RATE = 1e-3  # Adam's step size, decayed to zero over the fine-tuning (cosine)
WEIGHT_DECAY = 0.1  # AdamW's weight decay: each step subtracts this x the step size x w from each
#                     weight w (0: Adam)
SEED = 0  # seeds every random draw: NumPy's, Python's and the backend's, the corruptions too
STRATEGY = None  # None: one device; "mirrored": split every batch over all local devices
# output
OUTPUT_DIR = None  # where figures, metrics.json and model.keras go (None:
#                    outputs/06_deep_autoencoder)

PUBLISHED = {  # Hinton & Salakhutdinov (2006), Figure 2: squared error per MNIST test image
    "deep_ae": 3.00,  # their 784-1000-500-250-30 autoencoder, pretrained as RBMs
    "pca": 13.87,  # PCA with 30 components
}

# %%
"""
## Introduction

Chapter 01's autoencoder has two hidden layers and is trained from random weights. Make it much
deeper, 784 -> 1000 -> 500 -> 250 -> [30] -> 250 -> 500 -> 1000 -> 784, and in 2006, with the
sigmoid units and plain gradient descent of the time, training it from random weights got stuck:
the gradient that reached the bottom layers was tiny and noisy, and the network settled on blurry
averages. Hinton & Salakhutdinov (2006) got such a network to train by *pretraining* it one layer
at a time, then *unrolling* the stack into one deep autoencoder and *fine-tuning* it as a whole.
Its 30 numbers then rebuilt MNIST test images with a fifth of the error of PCA's 30 components.

Today's tools (ReLU units, better starting weights, Adam) train the same network from random
weights too: on held-out images it rebuilt with an error of 3.50 from random weights against 3.20
pretrained, after 100 epochs of fine-tuning without weight decay, in the comparison of
docs/06_deep_autoencoder.md. Pretraining is no longer what
makes it trainable; it is still a good start, and it is the recipe this chapter follows.

Here every layer is pretrained as a *denoising* autoencoder (chapter 05 tells the method, for a
classifier): layer 1 learns to rebuild the pixels from a copy with MASKING of them set to 0,
layer 2 to rebuild layer 1's codes from a copy with CODE_MASKING of them set to 0, and so on up
to the code layer, which is linear, so that its 30 numbers may take any value.

    pixels --[DAE 1]--> 1000 --[DAE 2]--> 500 --[DAE 3]--> 250 --[DAE 4]--> 30 (linear code)

The masking above layer 1 is light (25 %) on purpose: a code from which the whole image must
come back needs the detail that heavy masking teaches a layer to ignore.
"""


# %%
"""
## Setup

Apply the command line's overrides to the constants above (`--help` lists them), check them,
create and check the output folder, and seed every random generator with SEED.

Each training below runs as a *stage*: `stages.run(name, train, *args)` seeds the random
generators from SEED and the stage's name, calls `train(*args)` and keeps what it returns in the
output folder. Stopped with Ctrl-C, the same command run again loads the finished stages (and
resumes the fine-tuning from its last finished epoch) instead of training them again.
"""
started = time.perf_counter()
settings, out = start(globals())
stages = Stages(backup_folder(out, settings, "stages"), SEED)  # Ctrl-C, then rerun: resumes here

# %%
"""
## Prepare the data

All the training images, without labels, for pretraining, fine-tuning and PCA; the test images
only to report the figures at the end. Labels, where there are any, only colour the map of a
2-number code.
"""
data = load_data(DATA, DATASET, TRAIN_LIMIT, IMAGE_SIZE)
print(f"data: {data.describe()}")
x_flat = data.x_train.reshape(len(data.x_train), -1)

# %%
"""
## Greedy layer-wise pretraining

One layer is a one-hidden-layer autoencoder `x -> h -> x` of whatever it is given: the pixels
for layer 1, the codes of the layers below for the others. Its encoder is a ReLU layer (linear
for the code layer). On pixels its decoder is a sigmoid trained with binary cross-entropy; on the
ReLU codes of a layer below it is a ReLU trained with squared error. Its input is masked, a fresh
draw for every batch (the corruption is the model's first layer, active only in training, as in
chapters 02-05), and it must rebuild the clean input. Each layer is trained with Adam, its step
size decayed to zero (cosine), then frozen, and the clean codes it gives the training images are
the next layer's data.
"""


class PretrainedLayer(NamedTuple):
    """One trained layer of the stack: its encoder and the decoder that undid it."""

    encoder: list[np.ndarray]  # [kernel (inputs, units), bias (units,)]
    decoder: list[np.ndarray]  # [kernel (units, inputs), bias (inputs,)]
    activation: str  # of the encoder: "relu", or "linear" for the code layer
    decoder_activation: str  # "sigmoid" when it rebuilds pixels, "relu" when it rebuilds ReLU codes
    history: dict[str, list[float]]
    seconds: float

    @property
    def units(self) -> int:
        return self.encoder[0].shape[1]


def adam_cosine(learning_rate, total_steps, weight_decay=0.0):
    """Adam with its step size decayed to zero over `total_steps` (cosine). With a `weight_decay`,
    AdamW: every step also shrinks each weight by weight_decay x step size x the weight."""
    schedule = keras.optimizers.schedules.CosineDecay(learning_rate, max(1, total_steps))
    if weight_decay:
        return keras.optimizers.AdamW(schedule, weight_decay=weight_decay)
    return keras.optimizers.Adam(schedule)


def pretrain_layer(
    x, units, corruption, *, pixels, linear_code=False, epochs, batch_size, learning_rate, seed
):
    """Train one layer as an autoencoder of the (N, inputs) array `x`, with `corruption` applied
    to its input, afresh for every batch (None: a plain autoencoder)."""
    activation = "linear" if linear_code else "relu"
    decoder_activation = "sigmoid" if pixels else "relu"
    inputs = keras.Input(shape=(x.shape[1],))
    h = inputs if corruption is None else corruption.layer(seed)(inputs)
    h = layers.Dense(units, activation=activation, name="encoder")(h)
    outputs = layers.Dense(x.shape[1], activation=decoder_activation, name="decoder")(h)
    model = keras.Model(inputs, outputs, name=f"layer_{x.shape[1]}_{units}")
    model.compile(
        optimizer=adam_cosine(learning_rate, epochs * math.ceil(len(x) / batch_size)),
        loss="binary_crossentropy" if pixels else "mse",
        jit_compile=jit_compile(),  # XLA: each step, mask and all, compiled into one program
    )
    history, seconds = train_autoencoder(model, x, x, epochs=epochs, batch_size=batch_size)
    return PretrainedLayer(
        encoder=model.get_layer("encoder").get_weights(),
        decoder=model.get_layer("decoder").get_weights(),
        activation=activation,
        decoder_activation=decoder_activation,
        history=history,
        seconds=seconds,
    )


def encode(stack, x):
    """The (clean) codes of `x` (N, inputs) at the top of `stack`: each layer's x W + b, through a
    ReLU where the layer has one."""
    h = x
    for layer in stack:
        kernel, bias = layer.encoder
        h = h @ kernel + bias
        if layer.activation == "relu":
            h = np.maximum(h, 0)
    return h.astype(np.float32)


widths = (*HIDDEN_UNITS, CODE_DIM)
print(
    f"\n== Pretraining the encoder, {' -> '.join(map(str, widths))} (code), one layer at a time =="
)
stack = []
codes = x_flat
for k, units in enumerate(widths):
    level = MASKING if k == 0 else CODE_MASKING
    top = k == len(widths) - 1
    print(
        f"\n-- layer {k + 1}: {codes.shape[1]} -> {units}{' (linear code)' if top else ''}, "
        f"masking {level:.0%}"
    )
    layer = stages.run(
        f"layer_{k + 1}",
        pretrain_layer,
        codes,
        units,
        Corruption("masking", level) if level > 0 else None,
        pixels=k == 0,
        linear_code=top,
        epochs=PRETRAIN_EPOCHS,
        batch_size=PRETRAIN_BATCH_SIZE,
        learning_rate=PRETRAIN_LEARNING_RATE,
        seed=SEED + k,
    )
    stack.append(layer)
    codes = encode([layer], codes)  # the clean codes feed the next layer

# %%
"""
## Unroll and fine-tune

All the encoders, bottom to top, then their decoders, top to bottom, become one deep
autoencoder, every layer starting from the weights it had at the end of its own pretraining.
It is fine-tuned as a whole on reconstruction: binary cross-entropy per pixel, clean in and clean
out, backed up after every epoch. The optimizer is AdamW: Adam with a cosine-decayed step size,
and a *weight decay* that shrinks every weight a little at every step (by WEIGHT_DECAY x the step
size). A network this large learns to rebuild its training images far better than images it has
never seen; the decay, a pull towards small weights, narrows the gap between its error on the
training images and on new ones. The results print the error on both.
"""


def build_deep_autoencoder(stack, size=28, name="deep_autoencoder"):
    """Unroll a pretrained stack: its encoders bottom to top, then its decoders top to bottom.
    A size x size image in; its reconstruction in [0, 1] (sigmoid) out."""
    image = keras.Input(shape=(size, size), name="image")
    h = layers.Flatten()(image)
    pretrained = {}
    for k, layer in enumerate(stack):
        layer_name = "code" if k == len(stack) - 1 else f"encoder_{k + 1}"
        h = layers.Dense(layer.units, activation=layer.activation, name=layer_name)(h)
        pretrained[layer_name] = layer.encoder
    for k in reversed(range(len(stack))):
        layer = stack[k]
        h = layers.Dense(
            layer.decoder[0].shape[1], activation=layer.decoder_activation, name=f"decoder_{k + 1}"
        )(h)
        pretrained[f"decoder_{k + 1}"] = layer.decoder
    reconstruction = layers.Reshape((size, size), name="reconstruction")(h)
    model = keras.Model(image, reconstruction, name=name)
    for layer_name, weights in pretrained.items():
        model.get_layer(layer_name).set_weights(weights)
    return model


def fine_tune(model, x, resume_dir):
    """Fine-tune the unrolled autoencoder on reconstruction (backed up after every epoch)."""
    model.compile(
        optimizer=adam_cosine(LEARNING_RATE, EPOCHS * math.ceil(len(x) / BATCH_SIZE), WEIGHT_DECAY),
        loss="binary_crossentropy",
        jit_compile=jit_compile(),
    )
    history, seconds = train_autoencoder(
        model, x, x, epochs=EPOCHS, batch_size=BATCH_SIZE, resume_dir=resume_dir
    )
    return {"weights": model.get_weights(), "history": history, "seconds": seconds}


deep = build_deep_autoencoder(stack, IMAGE_SIZE)
deep.summary(line_length=80)
pretrained_reconstruction = deep.predict(data.x_test, batch_size=2000, verbose=0)
print(f"\n== Fine-tuning the deep autoencoder for {EPOCHS} epochs ==")
fine_tuned = stages.run(
    "fine_tuning", fine_tune, deep, data.x_train, stages.subfolder("fine_tuning_epochs")
)
deep.set_weights(fine_tuned["weights"])

# %%
"""
## Evaluate against PCA

The figure of merit of Hinton & Salakhutdinov: squared error summed over the pixels, averaged
over the test images. PCA with as many components as the code has numbers is fitted on the same
training images (`common/pca.py`: the projection around the mean, clipped to [0, 1] as every
chapter's PCA is).

On this measure chapter 01's 32-number autoencoder (0.00447 per pixel) scores about 3.50; the
deeper network here, pretrained and fine-tuned longer, goes below it. The unrolled stack before
fine-tuning ("pretrained only") is printed too, and it errs far more than PCA, drawing every
digit too bold. Two likely reasons: each encoder was pretrained on inputs with a share of their
values set to 0 (MASKING, CODE_MASKING) and never rescaled, so a clean input drives it harder
than anything it saw, layer after layer; and each decoder learned to rebuild its own layer's
input alone, so their small errors compound on the way down. Fine-tuning makes the layers work
as one.
"""


def squared_error_per_image(reference, estimate):
    """Squared error summed over the pixels, averaged over the images."""
    pixels = int(np.prod(np.shape(reference)[1:]))
    return float(pixels * mse_per_image(reference, estimate).mean())


reconstruction = deep.predict(data.x_test, batch_size=2000, verbose=0)
training_error = squared_error_per_image(
    data.x_train, deep.predict(data.x_train, batch_size=2000, verbose=0)
)
mean, components = pca(data.x_train, CODE_DIM)
pca_reconstruction = pca_reconstruct(data.x_test, mean, components)
deep_error = squared_error_per_image(data.x_test, reconstruction)
pretrained_error = squared_error_per_image(data.x_test, pretrained_reconstruction)
pca_error = squared_error_per_image(data.x_test, pca_reconstruction)
print(
    f"\nSquared error per test image (sum over {data.x_test[0].size} pixels, mean over "
    f"{len(data.x_test):,} images):"
)
print(f"  deep autoencoder, pretrained only      {pretrained_error:7.2f}")
print(
    f"  deep autoencoder, fine-tuned           {deep_error:7.2f}   (published: "
    f"{PUBLISHED['deep_ae']:.2f})"
)
print(f"  {f'  on its {len(data.x_train):,} training images':<39}{training_error:7.2f}")
print(
    f"  {f'PCA, {CODE_DIM} components':<39}{pca_error:7.2f}   (published: {PUBLISHED['pca']:.2f}, "
    "not clipped)"
)

# %%
"""
## Visualize and save

The reconstructions of test images through the code, before and after the fine-tuning, and
through PCA; the loss of every layer while it was pretrained, and of the fine-tuning. With a
2-number code (`--code_dim=2`) the codes of the test images are drawn as a map, beside PCA's first
two components, as in the paper's Figure 3.
"""
plotting.image_rows(
    out / "reconstructions.png",
    {
        "original": data.x_test,
        f"pretrained only\n({pretrained_error:.2f})": pretrained_reconstruction,
        f"fine-tuned\n({deep_error:.2f})": reconstruction,
        f"PCA {CODE_DIM}\n({pca_error:.2f})": pca_reconstruction,
    },
    n=12,
    title=f"Test images through {CODE_DIM} numbers (squared error per image)",
)
pretraining_losses = {}
for k, layer in enumerate(stack):
    pretraining_losses[f"layer {k + 1} ({layer.units})"] = layer.history
plotting.loss_curves(
    out / "pretraining_loss.png",
    pretraining_losses,
    ylabel="reconstruction loss (cross-entropy, then squared error)",
)
plotting.loss_curves(
    out / "loss.png", {"deep autoencoder": fine_tuned["history"]}, ylabel="cross-entropy per pixel"
)
if CODE_DIM == 2:
    encoder = keras.Model(deep.input, deep.get_layer("code").output)
    maps = {
        "codes": ("the deep autoencoder", encoder.predict(data.x_test, batch_size=2000, verbose=0)),
        "pca_codes": ("PCA", (data.x_test.reshape(len(data.x_test), -1) - mean) @ components.T),
    }
    for name, (method, points) in maps.items():
        plotting.labelled_scatter(
            out / f"{name}.png",
            points,
            data.y_test,
            data.class_names,
            xlabel="first number",
            ylabel="second number",
            title=f"Test images, {method}: 2 numbers each",
        )

metrics = {
    "settings": settings,
    "keras": describe(),
    "data": data.source,
    "n_train": len(data.x_train),
    "n_test": len(data.x_test),
    "deep_ae_sq_error_per_image": deep_error,
    "deep_ae_pretrained_only_sq_error_per_image": pretrained_error,
    "deep_ae_training_sq_error_per_image": training_error,
    "pca_sq_error_per_image": pca_error,
    "published_sq_error_per_image": PUBLISHED,
    "seconds": {
        "pretraining": round(sum(layer.seconds for layer in stack), 1),
        "fine_tuning": round(fine_tuned["seconds"], 1),
        "total": round(time.perf_counter() - started, 1),
    },
    "loss_history": {
        "pretraining": [layer.history["loss"] for layer in stack],
        "fine_tuning": fine_tuned["history"],
    },
}
save_model(deep, out / "model.keras")
save_json(out / "metrics.json", metrics)
stages.finished()
finish(out, f"deep AE {deep_error:.2f} (PCA {pca_error:.2f}) squared error per test image", started)
