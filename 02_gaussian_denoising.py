"""
Title: The denoising autoencoder: additive Gaussian noise
Description: Train a convolutional autoencoder to undo heavy Gaussian noise, with a fresh draw of
    noise for every batch, and see what the denoising criterion adds: against the same network
    trained only to copy clean images, and against four classical denoisers.
Run: python 02_gaussian_denoising.py                                 (the full run)
     python 02_gaussian_denoising.py --train_limit=5000 --epochs=4   (a quick look)
"""

# %%
import math
import time

from common import classical_denoisers, plotting
from common.corruption import Corruption
from common.data import TEST_SEED, holdout_split, load_data
from common.devices import describe, jit_compile
from common.errors import SettingError
from common.gradients import input_gradient
from common.metrics import image_quality, psnr_per_image
from common.outputs import save_json, save_model
from common.script import finish, start
from common.training import backup_folder, train_autoencoder

import keras
import numpy as np
from keras import layers

# --- hyperparameters: edit here, or override on the command line (--noise_std=0.3) ---
# data
DATASET = "mnist"  # "mnist" or "fashion_mnist" (ignored when DATA is set)
DATA = None  # an .npz, a folder of MNIST IDX files, or a folder of your own images (see the README)
IMAGE_SIZE = 28  # images are made grey squares of IMAGE_SIZE x IMAGE_SIZE pixels (a multiple of 4)
TRAIN_LIMIT = None  # use only the first N training images (None: all of them)
VALIDATION_SIZE = None  # the last N training images, held out: never trained on (None: a twelfth,
#                         at most 5,000)
# noise
NOISE_STD = 0.5  # standard deviation of the Gaussian noise added to every pixel (pixels in [0, 1])
SWEEP_LEVELS = (0.1, 0.3, 0.5, 0.7, 1.0)  # standard deviations to test the model at
# model
FILTERS = (32, 64)  # filters of the two convolutions of the encoder; the decoder mirrors them
CODE_DIM = 512  # size of the code: the dense layer in the middle
# training
EPOCHS = 5  # passes over the training images, for the denoising autoencoder
PLAIN_EPOCHS = 1  # passes for the plain autoencoder (it only has to learn to copy)
BATCH_SIZE = 128  # images per gradient step
LEARNING_RATE = 4e-3  # Adam's step size, decayed to zero over training (cosine)
SEED = 0  # seeds every random draw: NumPy's, Python's and the backend's, the training noise too
STRATEGY = None  # None: one device; "mirrored": split every batch over all local devices
CLASSICAL_TUNING_IMAGES = 300  # validation images on which each classical denoiser's parameter is
#                                chosen (fewer than 03's 500: four denoisers, 21 parameter values)
# output
TENSORBOARD = False  # also write TensorBoard logs (losses, and outputs every 2 epochs) to
#                      OUTPUT_DIR/tensorboard
OUTPUT_DIR = None  # where figures, metrics.json and model.keras go (None:
#                    outputs/02_gaussian_denoising)

# %%
"""
## Introduction

Chapter 01's autoencoder learnt to copy an image through a narrow code. A *denoising*
autoencoder (Vincent et al., 2008, 2010) is given a *corrupted* image and trained to rebuild the
*clean* one. It can no longer succeed by copying its input, so it has to learn what digits look
like: which pixel patterns are strokes and which are noise.

Here the corruption is additive Gaussian noise, the model of a camera's sensor noise: every pixel
gets `N(0, NOISE_STD^2)` added, then is clipped back to [0, 1]. At the default standard deviation,
0.5 (half the whole range of a pixel), the digits are barely legible. Chapters 03 and 04 take the
other two corruptions of Vincent et al.; `corruptions.png` shows all three at several levels.

To see what the denoising criterion itself adds, the same network is also trained the way chapter
01 trained its autoencoder (clean in, clean out) and given the same noisy test images.
"""

# %%
"""
## The model: a convolutional autoencoder

Whether a pixel is noise depends first on its neighbours, which a convolution sees directly, with
the same weights at every position:

    28x28 image -> conv 3x3 stride 2 (14x14 x 32) -> conv 3x3 stride 2 (7x7 x 64)
    -> dense code (512) -> dense (7x7 x 64)
    -> transposed conv stride 2 (14x14 x 32) -> transposed conv stride 2 -> 28x28 image

The dense code in the middle sees the whole digit at once, which is what tells a stroke from a
blotch of noise. It is *wider* than a digit needs: with a denoising criterion an autoencoder does
not need a narrow bottleneck to learn something useful (Vincent et al., 2010). Every layer but the
last is followed by batch normalization and a ReLU (`normalized_relu`): batch normalization
rescales each layer's outputs to a steady range, which lets the network train with a larger step
size and in fewer epochs.
"""


def build_denoiser(filters: tuple[int, int], code_dim: int, size: int, name: str) -> keras.Model:
    """The convolutional autoencoder above, for size x size images (size a multiple of 4)."""
    quarter = size // 4
    image = keras.Input(shape=(size, size), name="image")
    h = layers.Reshape((size, size, 1))(image)
    h = normalized_relu(layers.Conv2D(filters[0], 3, strides=2, padding="same", use_bias=False)(h))
    h = normalized_relu(layers.Conv2D(filters[1], 3, strides=2, padding="same", use_bias=False)(h))
    h = layers.Flatten()(h)
    h = normalized_relu(layers.Dense(code_dim, use_bias=False)(h), name="code")
    h = normalized_relu(layers.Dense(quarter * quarter * filters[1], use_bias=False)(h))
    h = layers.Reshape((quarter, quarter, filters[1]))(h)
    h = normalized_relu(
        layers.Conv2DTranspose(filters[0], 3, strides=2, padding="same", use_bias=False)(h)
    )
    # pixels in [0, 1]
    h = layers.Conv2DTranspose(1, 3, strides=2, padding="same", activation="sigmoid")(h)
    denoised = layers.Reshape((size, size), name="denoised")(h)
    return keras.Model(image, denoised, name=name)


def normalized_relu(h, name: str | None = None):
    """Batch normalization, then ReLU. While training, each unit's input is rescaled to zero mean
    and unit variance over the batch (then given a learnt scale and shift, which is why the layer
    before needs no bias); in prediction the running averages of those statistics are used. It
    lets the network learn faster, at a higher step size (Ioffe & Szegedy, 2015)."""
    normalized = layers.BatchNormalization(momentum=0.9)(h)
    return layers.ReLU(name=name)(normalized)


def code_unit_patterns(model: keras.Model, images: np.ndarray, n: int) -> np.ndarray:
    """What drives the `n` most active code units: the gradient of each unit's activation with
    respect to the input pixels, averaged over `images`, as a (pixels, n) matrix.

    For a dense first layer these would simply be its weights (as in Vincent et al.'s figures,
    and chapter 05's); here the code sits behind two convolutions, so we ask the network which
    input pattern raises each unit."""
    encoder = keras.Model(model.input, model.get_layer("code").output)
    mean_activation = keras.ops.convert_to_numpy(encoder(images)).mean(axis=0)
    busiest = np.argsort(-mean_activation)[:n]
    patterns = []
    for unit in busiest:
        gradient = input_gradient(lambda x, unit=unit: encoder(x)[:, unit], images)  # one per image
        patterns.append(gradient.mean(axis=0).ravel())
    return np.stack(patterns, axis=1)


# %%
"""
## Setup

Apply the command line's overrides to the constants above (`--help` lists them), create and
check the output folder, and seed every random generator with SEED.
"""
started = time.perf_counter()
settings, out = start(globals(), checks={"SWEEP_LEVELS": "non_negative"})
if IMAGE_SIZE % 4:
    raise SettingError(
        f"IMAGE_SIZE={IMAGE_SIZE}: the model halves the image twice, so use a multiple of 4 (28)"
    )

# %%
"""
## Prepare the data and the noise

The last VALIDATION_SIZE training images are held out: never trained on, they give the validation
loss and choose each classical denoiser's parameter, so that nothing is tuned on the test set. The
test images are corrupted once, with the fixed TEST_SEED, so every run is scored on the same noisy
test set; the validation images with TEST_SEED + 1.
"""
data = load_data(DATA, DATASET, TRAIN_LIMIT, IMAGE_SIZE)
print(f"data: {data.describe()}")
noise = Corruption("gaussian", NOISE_STD)
x_fit, x_val = holdout_split(data.x_train, VALIDATION_SIZE, "VALIDATION_SIZE")
x_val_noisy = noise(x_val, TEST_SEED + 1)
x_test_noisy = noise(data.x_test, TEST_SEED)
print(
    f"{len(x_fit):,} training, {len(x_val):,} validation and {len(data.x_test):,} test images; "
    f"{noise.describe()}"
)

# %%
"""
## Train the denoising autoencoder

The model that trains is the noise followed by the denoiser: `noise.layer(SEED)` adds a fresh draw
of noise to every batch while the model trains (and does nothing otherwise), so over EPOCHS passes
the denoiser sees each digit under as many noise patterns and can never learn the noise itself.
The loss is the binary cross-entropy per pixel between the output and the *clean* image, which
treats each pixel as the probability of ink; Adam, its step size decayed to zero over training.
"""
steps_per_epoch = math.ceil(len(x_fit) / BATCH_SIZE)


def compiled(model: keras.Model, epochs: int) -> keras.Model:
    schedule = keras.optimizers.schedules.CosineDecay(
        LEARNING_RATE, decay_steps=epochs * steps_per_epoch
    )
    optimizer = keras.optimizers.Adam(schedule)
    model.compile(optimizer=optimizer, loss="binary_crossentropy", jit_compile=jit_compile())
    return model


dae = build_denoiser(FILTERS, CODE_DIM, IMAGE_SIZE, "denoising_autoencoder")
dae.summary(line_length=80)
# what trains: the noise layer (active in training only), then the denoiser; `dae` is what is kept
noise_then_dae = compiled(
    keras.Sequential([keras.Input(dae.input_shape[1:]), noise.layer(SEED), dae]), EPOCHS
)
print("\n== Training the denoising autoencoder (noisy in, clean out) ==")
dae_history, dae_seconds = train_autoencoder(
    noise_then_dae,
    x_fit,  # the input, made noisy by the model's first layer
    x_fit,  # the target: the clean image
    epochs=EPOCHS,
    batch_size=BATCH_SIZE,
    validation=(x_val_noisy, x_val),
    resume_dir=backup_folder(out, settings, "denoising"),  # Ctrl-C, then rerun: resumes here
    tensorboard_dir=out / "tensorboard" / "denoising" if TENSORBOARD else None,
    preview=x_val_noisy[:8],
)

# %%
"""
## The same network trained as a plain autoencoder

Clean in, clean out, as in chapter 01: no noise in training, for PLAIN_EPOCHS passes (it only
has to learn to copy; its loss on the clean validation images, printed as it trains, shows how
well it copies, and `--plain_epochs=5` tries more).
"""
plain = compiled(build_denoiser(FILTERS, CODE_DIM, IMAGE_SIZE, "plain_autoencoder"), PLAIN_EPOCHS)
print("\n== Training the plain autoencoder (clean in, clean out) ==")
plain_history, plain_seconds = train_autoencoder(
    plain,
    x_fit,
    x_fit,
    epochs=PLAIN_EPOCHS,
    batch_size=BATCH_SIZE,
    validation=(x_val, x_val),
    resume_dir=backup_folder(out, settings, "plain"),
)

# %%
"""
## Evaluate on the noisy test set

PSNR (per image, data range 1, averaged) and SSIM against the clean test images, for the noisy
input, both autoencoders fed the *noisy* test images, and four classical denoisers a practitioner
would reach for, each with its one parameter chosen on validation images.
"""
evaluating = time.perf_counter()
denoised = dae.predict(x_test_noisy, batch_size=1000, verbose=0)  # the noisy images go in
plain_denoised = plain.predict(x_test_noisy, batch_size=1000, verbose=0)
rows = {
    "noisy input": image_quality(data.x_test, x_test_noisy),
    "denoising autoencoder": image_quality(data.x_test, denoised),
    "plain autoencoder": image_quality(data.x_test, plain_denoised),
}
tuning_images = slice(0, CLASSICAL_TUNING_IMAGES)  # the first validation images
tuned = classical_denoisers.tune_all(x_val_noisy[tuning_images], x_val[tuning_images])
classical_denoised = {}
for t in tuned:
    classical_denoised[t.denoiser.name] = t(x_test_noisy)
    rows[t.label] = image_quality(data.x_test, classical_denoised[t.denoiser.name])
# chosen on the validation images, as its parameter was
best = max(tuned, key=lambda t: t.held_out_psnr_db)

print(f"\nTest set: {len(data.x_test):,} images, {noise.describe()}")
print(f"{'':<36}{'PSNR (dB)':>10}{'SSIM':>8}")
for name, q in rows.items():
    print(f"{name:<36}{q['psnr_db']:>10.2f}{q['ssim']:>8.3f}")

# %%
"""
## One noise level in training, every level in testing

The model was trained at NOISE_STD only. How does it do on lighter and heavier noise, against
the best classical denoiser chosen (with its parameter) on validation images at each level?
"""
print(f"\n== The model trained at std {NOISE_STD:g}, tested at every level ==")
sweep = []
for level in SWEEP_LEVELS:
    at_level = noise.at(level)
    noisy = at_level(data.x_test, TEST_SEED)
    candidates = classical_denoisers.tune_all(
        at_level(x_val[tuning_images], TEST_SEED + 1), x_val[tuning_images]
    )
    classical = max(candidates, key=lambda t: t.held_out_psnr_db)
    row = {
        "level": level,
        "noisy_psnr_db": float(psnr_per_image(data.x_test, noisy).mean()),
        "dae_psnr_db": float(
            psnr_per_image(data.x_test, dae.predict(noisy, batch_size=1000, verbose=0)).mean()
        ),
        "best_classical": classical.label,
        "best_classical_psnr_db": float(psnr_per_image(data.x_test, classical(noisy)).mean()),
    }
    sweep.append(row)
    print(
        f"  std {level:<5g} noisy {row['noisy_psnr_db']:6.2f} dB   autoencoder "
        f"{row['dae_psnr_db']:6.2f} dB"
        f"   {row['best_classical']:<28} {row['best_classical_psnr_db']:6.2f} dB"
    )
evaluation_seconds = time.perf_counter() - evaluating

# %%
"""
## Visualize and save

The three corruptions of chapters 02-04 at several levels; the test images through each denoiser;
the sweep; the losses; and, for 64 code units of each autoencoder, the input pattern that raises
the unit (see `code_unit_patterns`).
"""
digit = data.x_test[:1]
corrupted = {"Gaussian noise\n(02)": {}, "masking\n(03)": {}, "salt and pepper\n(04)": {}}
for std in (0.1, 0.3, 0.5, 1.0):
    noisy_digit = Corruption("gaussian", std)(digit, TEST_SEED)[0]
    corrupted["Gaussian noise\n(02)"][f"std {std:g}"] = noisy_digit
for fraction in (0.1, 0.3, 0.5, 0.9):
    wiped = Corruption("masking", fraction)(digit, TEST_SEED)[0]
    corrupted["masking\n(03)"][f"{fraction:.0%} set to 0"] = wiped
    hit = Corruption("salt_and_pepper", fraction)(digit, TEST_SEED)[0]
    corrupted["salt and pepper\n(04)"][f"{fraction:.0%} set to 0 or 1"] = hit
plotting.level_rows(
    out / "corruptions.png", corrupted, title="The three corruptions of Vincent et al. (2010)"
)
plotting.image_rows(
    out / "denoising.png",
    {
        "clean": data.x_test,
        "noisy": x_test_noisy,
        "denoising AE": denoised,
        "plain AE": plain_denoised,
        best.denoiser.name: classical_denoised[best.denoiser.name],
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
        "denoising AE": code_unit_patterns(dae, x_val[:200], 64),
        "plain AE": code_unit_patterns(plain, x_val[:200], 64),
    },
    n=64,
)

classical_figures = {}
for t in tuned:
    parameter = {t.denoiser.parameter: t.value}
    classical_figures[t.denoiser.name] = rows[t.label] | {"parameter": parameter}
metrics = {
    "settings": settings,
    "keras": describe(),
    "data": data.source,
    "n_train": len(x_fit),
    "n_validation": len(x_val),
    "n_test": len(data.x_test),
    "noise": noise.as_dict(),
    "noisy_psnr_db": rows["noisy input"]["psnr_db"],
    "noisy_ssim": rows["noisy input"]["ssim"],
    "dae_psnr_db": rows["denoising autoencoder"]["psnr_db"],
    "dae_ssim": rows["denoising autoencoder"]["ssim"],
    "plain_ae_psnr_db": rows["plain autoencoder"]["psnr_db"],
    "plain_ae_ssim": rows["plain autoencoder"]["ssim"],
    "classical": classical_figures,
    "best_classical": best.denoiser.name,
    "sweep": sweep,
    "loss_history": {"dae": dae_history, "plain": plain_history},
    "seconds": {
        "denoising_autoencoder": round(dae_seconds, 1),
        "plain_autoencoder": round(plain_seconds, 1),
        "evaluation": round(evaluation_seconds, 1),
        "total": round(time.perf_counter() - started, 1),
    },
}
save_model(dae, out / "model.keras")  # noisy image in, denoised image out
save_json(out / "metrics.json", metrics)
best_classical_psnr = rows[best.label]["psnr_db"]
headline = (
    f"denoising autoencoder {metrics['dae_psnr_db']:.2f} dB, "
    f"plain autoencoder {metrics['plain_ae_psnr_db']:.2f} dB, "
    f"{best.denoiser.name} {best_classical_psnr:.2f} dB (noisy {metrics['noisy_psnr_db']:.2f} dB)"
)
finish(out, headline, started)
