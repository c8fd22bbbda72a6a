"""
Title: The denoising autoencoder: additive Gaussian noise
Description: Train a convolutional autoencoder to undo heavy Gaussian noise, with a fresh draw of
    noise for every batch, and see what the denoising criterion adds: against the same network
    trained only to copy clean images, and against four classical denoisers.
Run: python 02_gaussian_denoising.py            (add --epochs=2 --plain_epochs=1 --train_limit=10000 for a quick look)
"""

# %%
import time

from common import classical_denoisers, corruption, plotting
from common.corruption import Corruption
from common.data import holdout_split, load_data
from common.devices import use_xla
from common.errors import SettingError
from common.metrics import image_quality, psnr_per_image
from common.outputs import save_json, save_model
from common.script import finish, start
from common.training import backup_folder, train_autoencoder

import keras
import numpy as np
import tensorflow as tf
from keras import layers

# --- hyperparameters: edit here, or override on the command line (--noise_std=0.3) ---
# data
DATASET = "mnist"  # "mnist" or "fashion_mnist" (ignored when DATA is set)
DATA = None  # an .npz, a folder of MNIST IDX files, or a folder of your own images (see the README)
IMAGE_SIZE = 28  # images are made grey squares of IMAGE_SIZE x IMAGE_SIZE pixels (a multiple of 4)
TRAIN_LIMIT = None  # use only the first N training images (None: all of them)
VALIDATION_SIZE = None  # last N training images, never trained on (None: a twelfth of them, at most 5,000)
# noise
NOISE_STD = 0.5  # standard deviation of the Gaussian noise added to every pixel (pixels in [0, 1])
SWEEP_LEVELS = (0.1, 0.3, 0.5, 0.7, 1.0)  # standard deviations to test the model at
# model
CHANNELS = 32  # filters of the first convolution (the second has twice as many)
CODE_DIM = 512  # size of the code: the dense layer in the middle
# training
EPOCHS = 5  # passes over the training images, for the denoising autoencoder
PLAIN_EPOCHS = 1  # passes for the plain autoencoder (it only has to learn to copy)
BATCH_SIZE = 128  # images per gradient step
LEARNING_RATE = 4e-3  # Adam's step size, decayed to zero over training (cosine)
SEED = 0  # seeds NumPy, Python and TensorFlow, and the noise of the training batches
STRATEGY = None  # None: one device; "mirrored": split every batch over all local GPUs (or 2 CPU devices)
BASELINE_TUNING_IMAGES = 300  # held-out images that choose each classical denoiser's parameter
# output
TENSORBOARD = False  # also write TensorBoard logs (losses, and outputs every 2 epochs) to OUTPUT_DIR/tensorboard
OUTPUT_DIR = None  # where figures, metrics.json and model.keras go (None: outputs/02_gaussian_denoising)

# %%
"""
## Introduction

Chapter 01's autoencoder learnt to copy an image through a narrow code. A *denoising*
autoencoder (Vincent et al., 2008, 2010) is given a *corrupted* image and trained to rebuild the
*clean* one. It can no longer succeed by copying its input, so it has to learn what digits look
like: which pixel patterns are strokes and which are noise.

Here the corruption is additive Gaussian noise, the model of sensor noise in a camera: every
pixel gets `N(0, 0.5^2)` added, then is clipped back to [0, 1]. At a standard deviation of 0.5
(half the whole range of a pixel) the digits are barely legible.

Two things make it work:

- **A fresh corruption for every batch.** The noise is drawn inside the input pipeline, batch
  number i with the seed (SEED, i), so over 5 epochs the model sees each digit under 5
  different noise patterns and can never learn the noise itself. The test images are corrupted
  once, with a fixed seed, so every run is scored on the same noisy test set.
- **A convolutional model.** Whether a pixel is noise depends first on its neighbours, which a
  convolution sees directly, with the same weights at every position:

      28x28 image -> conv 3x3 stride 2 (14x14 x 32) -> conv 3x3 stride 2 (7x7 x 64)
      -> dense code (512) -> dense (7x7 x 64)
      -> transposed conv stride 2 (14x14 x 32) -> transposed conv stride 2 -> 28x28 image

  The dense code in the middle sees the whole digit at once, which is what tells a stroke from a
  blotch of noise. It is *wider* than a digit needs: with a denoising criterion an autoencoder
  does not need a narrow bottleneck to learn something useful (Vincent et al., 2010). Every layer
  but the last is followed by batch normalization and a ReLU (`normalized_relu`), which lets it
  train at twice chapter 01's step size and learn in 5 epochs more than it learns in 14 without.

To see what the denoising criterion itself adds, the same network is also trained the way chapter
01 trained its autoencoder (clean in, clean out) and given the same noisy test images.
"""


def build_denoiser(channels: int, code_dim: int, size: int, name: str) -> keras.Model:
    """The convolutional autoencoder above, for size x size images (size a multiple of 4)."""
    quarter = size // 4
    image = keras.Input(shape=(size, size), name="image")
    h = layers.Reshape((size, size, 1))(image)
    h = normalized_relu(layers.Conv2D(channels, 3, strides=2, padding="same", use_bias=False, name="conv_1")(h))
    h = normalized_relu(layers.Conv2D(2 * channels, 3, strides=2, padding="same", use_bias=False, name="conv_2")(h))
    h = layers.Flatten()(h)
    h = normalized_relu(layers.Dense(code_dim, use_bias=False)(h), name="code")
    h = normalized_relu(layers.Dense(quarter * quarter * 2 * channels, use_bias=False)(h))
    h = layers.Reshape((quarter, quarter, 2 * channels))(h)
    h = normalized_relu(layers.Conv2DTranspose(channels, 3, strides=2, padding="same", use_bias=False)(h))
    h = layers.Conv2DTranspose(1, 3, strides=2, padding="same", activation="sigmoid")(h)  # pixels in [0, 1]
    return keras.Model(image, layers.Reshape((size, size), name="denoised")(h), name=name)


def normalized_relu(h, name: str | None = None):
    """Batch normalization, then ReLU. While training, each unit's input is rescaled to zero mean
    and unit variance over the batch (then given a learnt scale and shift, which is why the layer
    before needs no bias); in prediction the running averages of those statistics are used. It
    lets the network learn faster, at a higher step size (Ioffe & Szegedy, 2015)."""
    return layers.ReLU(name=name)(layers.BatchNormalization(momentum=0.9)(h))


def code_unit_patterns(model: keras.Model, images: np.ndarray, n: int) -> np.ndarray:
    """What drives the `n` most active code units: the gradient of each unit's activation with
    respect to the input pixels, averaged over `images`, as a (pixels, n) matrix.

    For a dense first layer these would simply be its weights (as in Vincent et al.'s figures,
    and chapter 05's); here the code sits behind two convolutions, so we ask the network which
    input pattern raises each unit. Units that never fire on these images are skipped."""
    encoder = keras.Model(model.input, model.get_layer("code").output)
    x = tf.convert_to_tensor(images)
    busiest = np.argsort(-encoder(x).numpy().mean(axis=0))[:n]
    with tf.GradientTape() as tape:
        tape.watch(x)
        codes = tf.gather(encoder(x), busiest, axis=1)
    jacobian = tape.batch_jacobian(codes, x)  # (images, n, height, width)
    return tf.reduce_mean(jacobian, axis=0).numpy().reshape(len(busiest), -1).T


# %%
"""
## Setup

Apply the command line's overrides to the constants above (`--help` lists them), create and
check the output folder, and seed every random generator with SEED.
"""
started = time.perf_counter()
settings, out = start(globals())
if IMAGE_SIZE % 4:
    raise SettingError(f"IMAGE_SIZE={IMAGE_SIZE}: the model halves the image twice, so use a multiple of 4 (28)")

# %%
"""
## Prepare the data and the noise

The last VALIDATION_SIZE training images are held out: never trained on, they give the validation loss
and choose each classical denoiser's parameter, so that nothing is tuned on the test set.
"""
data = load_data(DATA, DATASET, TRAIN_LIMIT, IMAGE_SIZE)
print(f"data: {data.describe()}")
noise = Corruption("gaussian", NOISE_STD)
x_fit, x_held = holdout_split(data.x_train, VALIDATION_SIZE, "VALIDATION_SIZE")
held_noisy = noise(x_held, corruption.TEST_SEED + 1)
x_test_noisy = noise(data.x_test, corruption.TEST_SEED)  # the same noisy test set on every run
print(f"{len(x_fit):,} training, {len(x_held):,} held-out and {len(data.x_test):,} test images; {noise.describe()}")

# %%
"""
## Build and train the denoising autoencoder

Binary cross-entropy per pixel between the output and the *clean* image, which treats each
pixel as the probability of ink; Adam with its step size decayed to zero over the training.
`train_autoencoder` draws the noisy input of every batch afresh from `noise`.
"""
steps_per_epoch = -(-len(x_fit) // BATCH_SIZE)


def compiled(model: keras.Model, epochs: int) -> keras.Model:
    schedule = keras.optimizers.schedules.CosineDecay(LEARNING_RATE, decay_steps=epochs * steps_per_epoch)
    model.compile(optimizer=keras.optimizers.Adam(schedule), loss="binary_crossentropy", jit_compile=use_xla())
    return model


dae = compiled(build_denoiser(CHANNELS, CODE_DIM, IMAGE_SIZE, "denoising_autoencoder"), EPOCHS)
dae.summary(line_length=80)
print("\n== Training the denoising autoencoder (noisy in, clean out) ==")
dae_history, dae_seconds = train_autoencoder(
    dae,
    x_fit,
    noise,  # a fresh draw of noise for every batch
    epochs=EPOCHS,
    batch_size=BATCH_SIZE,
    seed=SEED,
    validation=(held_noisy, x_held),
    resume_dir=backup_folder(out, settings, "denoising"),  # Ctrl-C, then rerun: resumes here
    tensorboard_dir=out / "tensorboard" / "denoising" if TENSORBOARD else None,
    preview=held_noisy[:8],
)

# %%
"""
## The same network trained as a plain autoencoder

Clean in, clean out, as in chapter 01: no noise in training. One epoch is enough for it to learn
to copy clean digits well.
"""
plain = compiled(build_denoiser(CHANNELS, CODE_DIM, IMAGE_SIZE, "plain_autoencoder"), PLAIN_EPOCHS)
print("\n== Training the plain autoencoder (clean in, clean out) ==")
plain_history, plain_seconds = train_autoencoder(
    plain,
    x_fit,
    None,  # no corruption: the input is the target
    epochs=PLAIN_EPOCHS,
    batch_size=BATCH_SIZE,
    seed=SEED,
    validation=(x_held, x_held),
    resume_dir=backup_folder(out, settings, "plain"),
)

# %%
"""
## Evaluate on the noisy test set

PSNR (per image, data range 1, averaged) and SSIM against the clean test images, for the noisy
input, both autoencoders fed the *noisy* test images, and four classical denoisers a practitioner
would reach for, each with its one parameter chosen on held-out images.
"""
evaluating = time.perf_counter()
denoised = dae.predict(x_test_noisy, batch_size=1000, verbose=0)  # the noisy images go in
plain_out = plain.predict(x_test_noisy, batch_size=1000, verbose=0)
rows = {
    "noisy input": image_quality(data.x_test, x_test_noisy),
    "denoising autoencoder": image_quality(data.x_test, denoised),
    "plain autoencoder": image_quality(data.x_test, plain_out),
}
tuning = slice(0, BASELINE_TUNING_IMAGES)
tuned = classical_denoisers.tune_all(held_noisy[tuning], x_held[tuning])
classical_out = {}
for t in tuned:
    classical_out[t.denoiser.name] = t(x_test_noisy)
    rows[t.label] = image_quality(data.x_test, classical_out[t.denoiser.name])
best = max(tuned, key=lambda t: rows[t.label]["psnr_db"])

print(f"\nTest set: {len(data.x_test):,} images, {noise.describe()}")
print(f"{'':<36}{'PSNR (dB)':>10}{'SSIM':>8}")
for name, q in rows.items():
    print(f"{name:<36}{q['psnr_db']:>10.2f}{q['ssim']:>8.3f}")

# %%
"""
## One noise level in training, every level in testing

The model was trained at NOISE_STD only. How does it do on lighter and heavier noise, against
the best classical denoiser chosen (with its parameter) on held-out images at each level?
"""
print(f"\n== The model trained at std {NOISE_STD:g}, tested at every level ==")
sweep = []
for level in SWEEP_LEVELS:
    at_level = noise.at(level)
    noisy = at_level(data.x_test, corruption.TEST_SEED)
    candidates = classical_denoisers.tune_all(at_level(x_held[tuning], corruption.TEST_SEED + 1), x_held[tuning])
    classical = max(candidates, key=lambda t: t.held_out_psnr_db)
    row = {
        "level": level,
        "noisy_psnr_db": float(psnr_per_image(data.x_test, noisy).mean()),
        "dae_psnr_db": float(psnr_per_image(data.x_test, dae.predict(noisy, batch_size=1000, verbose=0)).mean()),
        "best_classical": classical.label,
        "best_classical_psnr_db": float(psnr_per_image(data.x_test, classical(noisy)).mean()),
    }
    sweep.append(row)
    print(
        f"  std {level:<5g} noisy {row['noisy_psnr_db']:6.2f} dB   autoencoder {row['dae_psnr_db']:6.2f} dB"
        f"   {row['best_classical']:<28} {row['best_classical_psnr_db']:6.2f} dB"
    )
eval_seconds = time.perf_counter() - evaluating

# %%
"""
## Visualize and save

The test images through each denoiser; the sweep; the losses; and, for 64 code units of each
autoencoder, the input pattern that raises the unit (see `code_unit_patterns`).
"""
plotting.image_rows(
    out / "denoising.png",
    {
        "clean": data.x_test,
        "noisy": x_test_noisy,
        "denoising AE": denoised,
        "plain AE": plain_out,
        best.denoiser.name: classical_out[best.denoiser.name],
    },
    n=12,
    title=f"Test images, {noise.describe()}",
)
plotting.curves(
    out / "sweep.png",
    [r["level"] for r in sweep],
    {
        "denoising autoencoder": [r["dae_psnr_db"] for r in sweep],
        "best classical denoiser": [r["best_classical_psnr_db"] for r in sweep],
        "noisy input": [r["noisy_psnr_db"] for r in sweep],
    },
    xlabel="noise standard deviation",
    ylabel="test PSNR (dB)",
    title=f"One model trained at std {NOISE_STD:g}, tested at every level",
    marker_at=NOISE_STD,
)
plotting.loss_curves(
    out / "loss.png",
    {"denoising AE": dae_history, "plain AE": plain_history},
    ylabel="binary cross-entropy per pixel",
)
plotting.filter_grids(
    out / "filters.png",
    {
        "denoising AE": code_unit_patterns(dae, x_held[:200], 64),
        "plain AE": code_unit_patterns(plain, x_held[:200], 64),
    },
    n=64,
)

metrics = {
    "settings": settings,
    "data": data.source,
    "n_train": len(x_fit),
    "n_held_out": len(x_held),
    "n_test": len(data.x_test),
    "noise": noise.as_dict(),
    "noisy_psnr_db": rows["noisy input"]["psnr_db"],
    "noisy_ssim": rows["noisy input"]["ssim"],
    "dae_psnr_db": rows["denoising autoencoder"]["psnr_db"],
    "dae_ssim": rows["denoising autoencoder"]["ssim"],
    "plain_ae_psnr_db": rows["plain autoencoder"]["psnr_db"],
    "plain_ae_ssim": rows["plain autoencoder"]["ssim"],
    "classical": {t.denoiser.name: {**rows[t.label], "parameter": {t.denoiser.parameter: t.value}} for t in tuned},
    "best_classical": best.denoiser.name,
    "sweep": sweep,
    "train_seconds": round(dae_seconds, 1),
    "plain_train_seconds": round(plain_seconds, 1),
    "eval_seconds": round(eval_seconds, 1),
    "loss_history": {"dae": dae_history, "plain": plain_history},
}
save_model(dae, out / "model.keras")  # noisy image in, denoised image out
save_json(out / "metrics.json", metrics)
finish(
    out,
    f"denoised test PSNR {metrics['dae_psnr_db']:.2f} dB (noisy {metrics['noisy_psnr_db']:.2f} dB)",
    started,
)
