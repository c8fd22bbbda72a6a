"""
Title: A basic autoencoder, and the linear one it must beat
Description: Compress 28x28 digits into 32 numbers and back, and measure how much better a small
    non-linear network does than PCA with the same 32 numbers.
Run: python 01_basic_autoencoder.py                                                  (the full run)
     python 01_basic_autoencoder.py --train_limit=5000 --epochs=20 --batch_size=32   (a quick look)
"""

# %%
import math
import time

from common import plotting
from common.data import load_data
from common.devices import describe, jit_compile
from common.metrics import image_quality
from common.outputs import save_json, save_model
from common.pca import pca, pca_reconstruct
from common.script import finish, start
from common.training import backup_folder, train_autoencoder

import keras
import numpy as np
from keras import layers

# --- hyperparameters: edit here, or override on the command line (--epochs=5) ---
# data
DATASET = "mnist"  # "mnist" or "fashion_mnist" (ignored when DATA is set)
DATA = None  # an .npz, a folder of MNIST IDX files, or a folder of your own images (see the README)
IMAGE_SIZE = 28  # images are made grey squares of IMAGE_SIZE x IMAGE_SIZE pixels
TRAIN_LIMIT = None  # use only the first N training images (None: all 60,000)
# model
CODE_DIM = 32  # size of the code, the bottleneck between encoder and decoder
HIDDEN_UNITS = (512, 256)  # encoder layer widths; the decoder mirrors them
# training
EPOCHS = 25  # passes over the training images
BATCH_SIZE = 256  # images per gradient step
LEARNING_RATE = 2e-3  # Adam's step size, decayed to zero over training (cosine)
SEED = 0  # seeds every random draw: NumPy's, Python's and the backend's
STRATEGY = None  # None: one device; "mirrored": split every batch over all local devices
# output
TENSORBOARD = False  # also write TensorBoard logs (losses, and outputs every 2 epochs) to
#                      OUTPUT_DIR/tensorboard
OUTPUT_DIR = None  # where figures, metrics.json and model.keras go (None:
#                    outputs/01_basic_autoencoder)


# %%
"""
## Introduction

An autoencoder is two networks trained as one. The *encoder* squeezes an image `x` (784 pixels)
into a short *code* `h = f(x)` (here 32 numbers); the *decoder* rebuilds an image `g(h)` from the
code alone. Training minimises the reconstruction error between `x` and `g(f(x))`, so the code is
forced to keep what matters about the image and drop the rest.

    784 pixels -> 512 -> 256 -> [32-number code] -> 256 -> 512 -> 784 pixels
    `------------ encoder ------------'   `---------- decoder -----------'

PCA (principal component analysis) is the best flat, linear code: it projects each image onto
the 32 directions along which the training images vary most, and rebuilds it from those 32
numbers. A linear autoencoder trained on squared error learns the same subspace (Baldi & Hornik,
1989). PCA is therefore the baseline, and both are scored by squared error: whatever the
non-linear layers buy is the gap between the two.
"""


def build_autoencoder(
    code_dim: int, hidden_units: tuple[int, ...], size: int = 28
) -> tuple[keras.Model, keras.Model]:
    """A dense autoencoder of size x size images, and its encoder (image -> code), sharing
    weights."""
    image = keras.Input(shape=(size, size), name="image")
    h = layers.Flatten()(image)
    for units in hidden_units:
        h = layers.Dense(units, activation="relu")(h)
    code = layers.Dense(code_dim, name="code")(h)  # linear: the code may take any real value
    h = code
    for units in reversed(hidden_units):
        h = layers.Dense(units, activation="relu")(h)
    pixels = layers.Dense(size * size, activation="sigmoid")(h)  # pixel values in [0, 1]
    reconstruction = layers.Reshape((size, size), name="reconstruction")(pixels)
    return keras.Model(image, reconstruction, name="autoencoder"), keras.Model(
        image, code, name="encoder"
    )


# %%
"""
## Setup

Apply the command line's overrides to the constants above (`--help` lists them), create and
check the output folder, and seed every random generator with SEED.
"""
started = time.perf_counter()
settings, out = start(globals())

# %%
"""
## Prepare the data

The training and test images (on MNIST, 60,000 and 10,000), pixel values scaled to [0, 1]. The
labels are not used to train: only to colour the picture of the codes at the end.
"""
data = load_data(DATA, DATASET, TRAIN_LIMIT, IMAGE_SIZE)
print(f"data: {data.describe()}")

# %%
"""
## Build the model

ReLU hidden layers, a linear code, and a sigmoid output so that every pixel lands in [0, 1].
The loss is binary cross-entropy per pixel, which treats each pixel as the probability of
ink; it trains faster than squared error on MNIST's near-binary images, and we still report
squared error.
"""
autoencoder, encoder = build_autoencoder(CODE_DIM, tuple(HIDDEN_UNITS), IMAGE_SIZE)
steps = EPOCHS * math.ceil(len(data.x_train) / BATCH_SIZE)
schedule = keras.optimizers.schedules.CosineDecay(LEARNING_RATE, decay_steps=steps)
optimizer = keras.optimizers.Adam(schedule)
# jit_compile(): XLA compiles each training step into one faster program, where it is faster
autoencoder.compile(optimizer=optimizer, loss="binary_crossentropy", jit_compile=jit_compile())
autoencoder.summary(line_length=80)

# %%
"""
## Train

The input is the target: the network learns to copy each image through the bottleneck.
"""
history, train_seconds = train_autoencoder(
    autoencoder,
    data.x_train,  # the input
    data.x_train,  # the target: the input itself
    epochs=EPOCHS,
    batch_size=BATCH_SIZE,
    resume_dir=backup_folder(out, settings, "autoencoder"),  # Ctrl-C, then rerun: resumes here
    tensorboard_dir=out / "tensorboard" if TENSORBOARD else None,
    preview=data.x_test[:8],
)

# %%
"""
## Evaluate: the autoencoder against PCA with as many components

Both are fitted on the same training images and scored on all test images: by mean squared
error; by PSNR, the peak signal-to-noise ratio, 10 log10(1 / MSE) of each image in decibels
(higher is better); and by SSIM, the structural similarity, which compares local patterns of
light and contrast rather than single pixels (1 is identical). Both are averaged over the images.
"""
reconstructions = autoencoder.predict(data.x_test, batch_size=1000, verbose=0)
mean, components = pca(data.x_train, CODE_DIM)
pca_reconstructions = pca_reconstruct(data.x_test, mean, components)
ae = image_quality(data.x_test, reconstructions)
linear = image_quality(data.x_test, pca_reconstructions)

print(f"\nTest set ({len(data.x_test):,} images), code of {CODE_DIM} numbers:")
print(f"{'':<24}{'MSE':>10}{'PSNR (dB)':>11}{'SSIM':>8}")
for name, q in ((f"autoencoder ({EPOCHS} epochs)", ae), (f"PCA, {CODE_DIM} components", linear)):
    print(f"{name:<24}{q['mse']:>10.5f}{q['psnr_db']:>11.2f}{q['ssim']:>8.3f}")
print(f"autoencoder MSE / PCA MSE = {ae['mse'] / linear['mse']:.2f}")

# %%
"""
## Visualize and save

Originals over reconstructions, PCA's reconstructions of the same digits, the loss curve,
and the test codes seen in two dimensions (their two principal directions when the code is
larger than two).
"""
shown = data.x_test[:12]
plotting.image_rows(
    out / "reconstructions.png",
    {
        "original": shown,
        "autoencoder": reconstructions[:12],
        f"PCA ({CODE_DIM})": pca_reconstructions[:12],
    },
    n=12,
    title=f"Test images through a {CODE_DIM}-number code",
)
plotting.loss_curves(
    out / "loss.png", {"autoencoder": history}, ylabel="binary cross-entropy per pixel"
)
codes = encoder.predict(data.x_test, batch_size=1000, verbose=0)
axes = ("code number 1", "code number 2")
if CODE_DIM > 2:
    codes = codes - codes.mean(axis=0)
    # its rows: the principal directions, largest first
    directions = np.linalg.svd(codes, full_matrices=False)[2]
    codes = codes @ directions[:2].T
    axes = ("first principal direction of the codes", "second principal direction")
plotting.code_scatter(
    out / "codes.png",
    codes,
    data.y_test,
    data.class_names,
    title=f"Test codes ({CODE_DIM}-D, 2-D view)",
    axis_labels=axes,
    class_label="digit" if DATASET == "mnist" and not DATA else "class",
)

metrics = {
    "settings": settings,
    "keras": describe(),
    "data": data.source,
    "n_train": len(data.x_train),
    "n_test": len(data.x_test),
    "code_dim": CODE_DIM,
    "epochs": EPOCHS,
    "test_mse": ae["mse"],
    "test_psnr_db": ae["psnr_db"],
    "test_ssim": ae["ssim"],
    "pca_test_mse": linear["mse"],
    "pca_test_psnr_db": linear["psnr_db"],
    "pca_test_ssim": linear["ssim"],
    "mse_ratio_to_pca": ae["mse"] / linear["mse"],
    "loss_history": history["loss"],
    "seconds": {
        "training": round(train_seconds, 1),
        "total": round(time.perf_counter() - started, 1),
    },
}
save_model(autoencoder, out / "model.keras")
save_json(out / "metrics.json", metrics)
finish(out, f"test MSE {ae['mse']:.5f} ({ae['mse'] / linear['mse']:.2f} x PCA's)", started)
