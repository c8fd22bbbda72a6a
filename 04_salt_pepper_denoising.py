"""
Title: One model for every noise level: salt-and-pepper noise
Description: Train one denoising autoencoder on salt-and-pepper noise at a single level and another
    on a level drawn afresh for every image, and see on a sweep of levels what each has learnt,
    against the median filter, the textbook remedy.
Run: python 04_salt_pepper_denoising.py                          (the full run)
     python 04_salt_pepper_denoising.py --train_limit=5000 --epochs=5 \
         --batch_size=32                                         (a quick look)
"""

# %%
import math
import time

from common import classical_denoisers, plotting
from common.corruption import Corruption, LevelRange
from common.data import TEST_SEED, holdout_split, load_data
from common.devices import describe, jit_compile
from common.errors import SettingError
from common.metrics import image_quality, psnr_per_image
from common.outputs import save_json, save_model
from common.script import finish, start
from common.training import backup_folder, train_autoencoder

import keras
from keras import layers

# --- hyperparameters: edit here, or override on the command line (--noise_fraction=0.3) ---
# data
DATASET = "mnist"  # "mnist" or "fashion_mnist" (ignored when DATA is set)
DATA = None  # an .npz, a folder of MNIST IDX files, or a folder of your own images (see the README)
IMAGE_SIZE = 28  # images are made grey squares of IMAGE_SIZE x IMAGE_SIZE pixels (a multiple of 4)
TRAIN_LIMIT = None  # use only the first N training images (None: all of them)
VALIDATION_SIZE = None  # the last N training images, held out: never trained on (None: a twelfth,
#                         at most 5,000)
# noise
NOISE_FRACTION = 0.5  # the single level: fraction of the pixels hit, each set to 0 or 1
RANGE_MODEL_LEVELS = (0.0, 0.9)  # the range model's fraction hit is drawn for every image,
#                                  uniformly in between
SALT_RATIO = 0.5  # share of the hit pixels set to 1 (salt); the rest are set to 0 (pepper)
SWEEP_LEVELS = (0.1, 0.3, 0.5, 0.7, 0.9)  # fractions to test both models at
# model
FILTERS = (32, 64)  # filters of the two convolutions of the encoder; the decoder mirrors them
CODE_DIM = 512  # size of the code: the dense layer in the middle
# training
EPOCHS = 3  # passes over the training images, for each of the two models
BATCH_SIZE = 128  # images per gradient step
LEARNING_RATE = 4e-3  # Adam's step size, decayed to zero over training (cosine)
SEED = 0  # seeds every random draw: NumPy's, Python's and the backend's, the training noise too
STRATEGY = None  # None: one device; "mirrored": split every batch over all local devices
CLASSICAL_TUNING_IMAGES = 500  # validation images on which the median filter's window is chosen, at
#                                each level
# output
TENSORBOARD = False  # also write TensorBoard logs (losses, and outputs every 2 epochs) to
#                      OUTPUT_DIR/tensorboard
OUTPUT_DIR = None  # where figures, metrics.json and model.keras go (None:
#                    outputs/04_salt_pepper_denoising)

# %%
"""
## Introduction

Salt-and-pepper noise models impulse noise (faulty sensor cells, bit errors in transmission): a
random fraction of the pixels is forced to an extreme, half of them to white (salt) and half to
black (pepper). A hit pixel keeps nothing of its true value, and a white speck looks just like
ink. The textbook remedy is the median filter.

Chapter 02 trained at one noise level and found its model weakest far below it: at light noise it
still smooths as hard as it learnt to, wipes out detail, and a classical denoiser beats it. Real
noise rarely comes at one known level. A remedy that costs no more training: draw the level itself
at random, for every image of every batch, so that the model sees light and heavy noise alike and
has to judge from the image how much to repair. It is a trade: a model spread over every level
may do a little worse at any one of them than a model trained there. This chapter trains both,
the same network for the same number of steps:

- the *one-level* model, on NOISE_FRACTION of the pixels hit, as in chapters 02 and 03;
- the *range* model, on a fraction drawn for every image uniformly in RANGE_MODEL_LEVELS.

Then both are tested across the whole sweep of levels, with the median filter (its window chosen
on validation images at each level) as the classical reference. The range model is the one saved:
it is the one to use when the noise level is unknown.
"""


def build_denoiser(filters: tuple[int, int], code_dim: int, size: int, name: str) -> keras.Model:
    """Chapter 02's convolutional autoencoder: two strided convolutions, a dense code, two
    transposed convolutions back to a size x size image in [0, 1] (size a multiple of 4), with
    batch normalization and ReLU after every layer but the last."""
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
    """Batch normalization, then ReLU (chapter 02 explains it)."""
    normalized = layers.BatchNormalization(momentum=0.9)(h)
    return layers.ReLU(name=name)(normalized)


# %%
"""
## Setup

Apply the command line's overrides to the constants above (`--help` lists them), create and
check the output folder, and seed every random generator with SEED.
"""
started = time.perf_counter()
settings, out = start(
    globals(), checks={"SWEEP_LEVELS": "fraction", "RANGE_MODEL_LEVELS": "fraction"}
)
if IMAGE_SIZE % 4:
    raise SettingError(
        f"IMAGE_SIZE={IMAGE_SIZE}: the model halves the image twice, so use a multiple of 4 (28)"
    )
if len(RANGE_MODEL_LEVELS) != 2 or RANGE_MODEL_LEVELS[0] > RANGE_MODEL_LEVELS[1]:
    raise SettingError(
        f"RANGE_MODEL_LEVELS={RANGE_MODEL_LEVELS!r}: give two fractions, the lowest first, e.g. "
        "(0.0,0.9)"
    )

# %%
"""
## Prepare the data and the two kinds of training noise
"""
data = load_data(DATA, DATASET, TRAIN_LIMIT, IMAGE_SIZE)
print(f"data: {data.describe()}")
one_level = Corruption("salt_and_pepper", NOISE_FRACTION, SALT_RATIO)
lowest, highest = RANGE_MODEL_LEVELS
level_range = LevelRange("salt_and_pepper", lowest, highest, SALT_RATIO)
x_fit, x_val = holdout_split(data.x_train, VALIDATION_SIZE, "VALIDATION_SIZE")
x_val_noisy = one_level(x_val, TEST_SEED + 1)
print(f"{len(x_fit):,} training, {len(x_val):,} validation and {len(data.x_test):,} test images")

# %%
"""
## Train the two models

The same network, loss (binary cross-entropy per pixel, against the clean image), optimizer and
number of steps; only the noise of the training batches differs.
"""
steps = EPOCHS * math.ceil(len(x_fit) / BATCH_SIZE)
models = {}
histories = {}
train_seconds = {}
for name, noise in (("one_level", one_level), ("range", level_range)):
    model = build_denoiser(FILTERS, CODE_DIM, IMAGE_SIZE, f"{name}_denoiser")
    # a fresh draw for every batch (and, for the range model, a fresh level for every image)
    noise_then_model = keras.Sequential(
        [keras.Input(model.input_shape[1:]), noise.layer(SEED), model]
    )
    schedule = keras.optimizers.schedules.CosineDecay(LEARNING_RATE, decay_steps=steps)
    optimizer = keras.optimizers.Adam(schedule)
    noise_then_model.compile(
        optimizer=optimizer, loss="binary_crossentropy", jit_compile=jit_compile()
    )
    print(f"\n== Training the {name.replace('_', '-')} model: {noise.describe()} ==")
    histories[name], train_seconds[name] = train_autoencoder(
        noise_then_model,
        x_fit,  # the input, made noisy by the model's first layer
        x_fit,  # the target: the clean image
        epochs=EPOCHS,
        batch_size=BATCH_SIZE,
        validation=(x_val_noisy, x_val),  # both validated at NOISE_FRACTION
        resume_dir=backup_folder(out, settings, name),  # Ctrl-C, then rerun: resumes here
        tensorboard_dir=out / "tensorboard" / name if TENSORBOARD else None,
        preview=x_val_noisy[:8],
    )
    models[name] = model

# %%
"""
## Evaluate at the single level

All the test images, hit at NOISE_FRACTION with a fixed seed: PSNR and SSIM against the clean
images for the noisy input, both models and the median filter.
"""
evaluating = time.perf_counter()
clean = data.x_test
x_test_noisy = one_level(clean, TEST_SEED)  # the same noisy test set on every run
one_level_denoised = models["one_level"].predict(x_test_noisy, batch_size=1000, verbose=0)
range_denoised = models["range"].predict(x_test_noisy, batch_size=1000, verbose=0)
tuning = slice(0, CLASSICAL_TUNING_IMAGES)
median = classical_denoisers.tune(
    classical_denoisers.named("median filter"), x_val_noisy[tuning], x_val[tuning]
)
median_denoised = median(x_test_noisy)
rows = {
    "noisy input": image_quality(clean, x_test_noisy),
    f"one-level model (trained at {NOISE_FRACTION:g})": image_quality(clean, one_level_denoised),
    f"range model (trained at {lowest:g} to {highest:g})": image_quality(clean, range_denoised),
    median.label: image_quality(clean, median_denoised),
}
noisy_row, one_level_row, range_row, median_row = rows.values()
print(f"\nTest set: {len(clean):,} images, {one_level.describe()}")
print(f"{'':<42}{'PSNR (dB)':>10}{'SSIM':>8}")
for label, q in rows.items():
    print(f"{label:<42}{q['psnr_db']:>10.2f}{q['ssim']:>8.3f}")
difference = range_row["psnr_db"] - one_level_row["psnr_db"]
print(
    f"the range model is {difference:+.2f} dB from the one-level model at the one-level model's "
    "own level"
)

# %%
"""
## Every level

Both models, and the median filter with its window chosen again on validation images at each
level, on all the test images hit at each fraction of SWEEP_LEVELS.
"""
print("\n== Both models at every level ==")
sweep = []
for level in SWEEP_LEVELS:
    at_level = one_level.at(level)
    noisy = at_level(clean, TEST_SEED)
    median_at_level = classical_denoisers.tune(
        classical_denoisers.named("median filter"),
        at_level(x_val[tuning], TEST_SEED + 1),
        x_val[tuning],
    )
    one_level_at_level = models["one_level"].predict(noisy, batch_size=1000, verbose=0)
    range_at_level = models["range"].predict(noisy, batch_size=1000, verbose=0)
    row = {
        "level": level,
        "noisy_psnr_db": float(psnr_per_image(clean, noisy).mean()),
        "one_level_psnr_db": float(psnr_per_image(clean, one_level_at_level).mean()),
        "range_psnr_db": float(psnr_per_image(clean, range_at_level).mean()),
        "median_size": median_at_level.value,
        "median_psnr_db": float(psnr_per_image(clean, median_at_level(noisy)).mean()),
    }
    sweep.append(row)
    print(
        f"  {level:>4.0%} hit: noisy {row['noisy_psnr_db']:6.2f} dB   one-level "
        f"{row['one_level_psnr_db']:6.2f} dB"
        f"   range {row['range_psnr_db']:6.2f} dB   {median_at_level.label:<22} "
        f"{row['median_psnr_db']:6.2f} dB"
    )
evaluation_seconds = time.perf_counter() - evaluating

# %%
"""
## Visualize and save
"""
plotting.image_rows(
    out / "denoising.png",
    {
        "clean": clean,
        "noisy": x_test_noisy,
        "one-level\nmodel": one_level_denoised,
        "range\nmodel": range_denoised,
        "median filter": median_denoised,
    },
    n=12,
    title=f"Test images, {one_level.describe()}",
)
plotting.curves(
    out / "sweep.png",
    [r["level"] for r in sweep],
    {
        f"one-level model (trained at {NOISE_FRACTION:g})": [r["one_level_psnr_db"] for r in sweep],
        f"range model (trained at {lowest:g} to {highest:g})": [r["range_psnr_db"] for r in sweep],
        "median filter (window chosen at each level)": [r["median_psnr_db"] for r in sweep],
        "noisy input": [r["noisy_psnr_db"] for r in sweep],
    },
    xlabel="fraction of pixels hit",
    ylabel="test PSNR (dB)",
    title="One level in training against a range of levels",
    marker_at=NOISE_FRACTION,
)
plotting.loss_curves(
    out / "loss.png",
    {"one-level model": histories["one_level"], "range model": histories["range"]},
    # the two train on different noise, so their training losses are not comparable; their
    # validation losses are, on the same noisy images
    ylabel=f"binary cross-entropy per pixel (validation at {NOISE_FRACTION:g})",
)

metrics = {
    "settings": settings,
    "keras": describe(),
    "data": data.source,
    "n_train": len(x_fit),
    "n_validation": len(x_val),
    "n_test": len(clean),
    "noise": one_level.as_dict(),
    "range_model_levels": level_range.as_dict(),
    "noisy_psnr_db": noisy_row["psnr_db"],
    "range_psnr_db": range_row["psnr_db"],  # the saved model's
    "range_ssim": range_row["ssim"],
    "one_level_psnr_db": one_level_row["psnr_db"],
    "one_level_ssim": one_level_row["ssim"],
    "median": median_row | {"size": median.value},
    "sweep": sweep,
    "loss_history": histories,
    "seconds": {
        "one_level_model": round(train_seconds["one_level"], 1),
        "range_model": round(train_seconds["range"], 1),
        "evaluation": round(evaluation_seconds, 1),
        "total": round(time.perf_counter() - started, 1),
    },
}
save_model(models["range"], out / "model.keras")  # noisy image in (any level), denoised image out
save_json(out / "metrics.json", metrics)
finish(
    out,
    f"range model {metrics['range_psnr_db']:.2f} dB, one-level model "
    f"{metrics['one_level_psnr_db']:.2f} dB "
    f"(noisy {metrics['noisy_psnr_db']:.2f} dB)",
    started,
)
