"""
Title: Denoising autoencoder: masking noise
Description: Train an autoencoder to fill in the half of the pixels that were wiped out, with a
    fresh mask for every batch, and measure it against classical denoisers and a plain autoencoder.
Run: python 03_masking_denoising.py             (add --epochs=1 --train_limit=5000 for a quick look)
"""

# %%
import time

from common import denoising
from common.corruption import Corruption
from common.data import load_data
from common.script import finish, start

# --- hyperparameters: edit here, or override on the command line (--noise_fraction=0.25) ---
# data
DATASET = "mnist"  # "mnist" or "fashion_mnist" (ignored when DATA is set)
DATA = None  # an .npz, a folder of MNIST IDX files, or a folder of your own images (see the README)
IMAGE_SIZE = 28  # images are made grey squares of IMAGE_SIZE x IMAGE_SIZE pixels
TRAIN_LIMIT = None  # use only the first N training images (None: all 60,000)
HOLDOUT = 5000  # last N training images, never trained on: they choose the baselines' parameters
# noise
NOISE_FRACTION = 0.5  # fraction of the pixels set to 0, chosen at random for every image
SWEEP_LEVELS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)  # fractions to test the model at
# model
CHANNELS = 32  # filters of the first convolution (the second has twice as many)
CODE_UNITS = 512  # units of the dense code in the middle
# training
EPOCHS = 10  # passes over the training images, for the denoising autoencoder
PLAIN_EPOCHS = 2  # passes for the plain autoencoder (it only has to learn to copy)
BATCH_SIZE = 128  # images per gradient step
LEARNING_RATE = 2e-3  # Adam's step size, decayed to zero over training (cosine)
SEED = 0  # seeds NumPy, Python and TensorFlow, and the corruption of the training batches
STRATEGY = None  # None: one device; "mirrored": split every batch over all local GPUs (or 2 CPU devices)
BASELINE_TUNING_IMAGES = 500  # held-out images used to choose each classical denoiser's parameter
# output
TENSORBOARD = False  # also write TensorBoard logs (losses, and outputs every 2 epochs) to OUTPUT_DIR/tensorboard
OUTPUT_DIR = None  # where figures, metrics.json and model.keras go (None: outputs/03_masking_denoising)

# %%
"""
## Introduction

A denoising autoencoder (Vincent et al., 2008, 2010) is trained to rebuild the *clean* image from
a *corrupted* copy. It cannot simply copy its input, so it has to learn what digits look like:
which pixel patterns are strokes and which are noise.

Here the corruption is masking noise, the one Vincent et al. use most: a random half of the
pixels is set to 0, as if wiped out (dead pixels, dropped packets, occlusion). The model is
never told which pixels were wiped: a 0 in the input may be background or a lost piece of a
stroke, and only the shape of the digit around it can tell. Rebuilding a wiped pixel from its
neighbours is exactly the dependency between pixels that a good representation must capture.

The mask is drawn afresh for every batch of every epoch, so the model sees each training digit
under a new mask each time and can never memorise one; the test images are masked once, with a
fixed seed, so every run is scored on the same corrupted test set.
"""


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
## Prepare the data and the corruption
"""
data = load_data(DATA, DATASET, TRAIN_LIMIT, IMAGE_SIZE)
print(f"data: {data.describe()}")
noise = Corruption("masking", NOISE_FRACTION)

# %%
"""
## Train, evaluate, sweep, and save

`common/denoising.py` holds the experiment the three denoising chapters share: the model
(`build_denoiser`), the training with a fresh corruption each batch, the scoring against
the classical denoisers and a plain autoencoder, and the sweep over noise levels.
"""
metrics = denoising.run(noise, data, settings, out, level_name="fraction of pixels masked")
finish(
    out,
    f"denoised test PSNR {metrics['dae_psnr_db']:.2f} dB (corrupted {metrics['noisy_psnr_db']:.2f} dB)",
    started,
)
