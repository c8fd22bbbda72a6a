"""
Title: One model for every noise level: salt-and-pepper noise
Description: Train one denoising autoencoder on salt-and-pepper noise at a single level and another
    on a level drawn afresh for every image, and see on a sweep of levels what each has learnt,
    against the median filter, the textbook remedy.
Run: python 04_salt_pepper_denoising.py         (add --epochs=2 --train_limit=10000 for a quick look)
"""

# %%
import time

from common import classical_denoisers, corruption, plotting
from common.corruption import Corruption, LevelRange
from common.data import holdout_split, load_data
from common.devices import use_xla
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
VALIDATION_SIZE = None  # last N training images, never trained on (None: a twelfth of them, at most 5,000)
# noise
NOISE_FRACTION = 0.5  # the single level: fraction of the pixels hit, each set to 0 or 1
TRAIN_RANGE = (0.0, 0.9)  # the other model's level is drawn for every image, uniformly in this range
SALT_RATIO = 0.5  # share of the hit pixels set to 1 (salt); the rest are set to 0 (pepper)
SWEEP_LEVELS = (0.1, 0.3, 0.5, 0.7, 0.9)  # fractions to test both models at
# model
CHANNELS = 32  # filters of the first convolution (the second has twice as many)
CODE_DIM = 512  # size of the code: the dense layer in the middle
# training
EPOCHS = 3  # passes over the training images, for each of the two models
BATCH_SIZE = 128  # images per gradient step
LEARNING_RATE = 4e-3  # Adam's step size, decayed to zero over training (cosine)
SEED = 0  # seeds NumPy, Python and TensorFlow, and the noise of the training batches
STRATEGY = None  # None: one device; "mirrored": split every batch over all local GPUs (or 2 CPU devices)
BASELINE_TUNING_IMAGES = 500  # held-out images that choose the median filter's window at each level
# output
TENSORBOARD = False  # also write TensorBoard logs (losses, and outputs every 2 epochs) to OUTPUT_DIR/tensorboard
OUTPUT_DIR = None  # where figures, metrics.json and model.keras go (None: outputs/04_salt_pepper_denoising)

# %%
"""
## Introduction

Salt-and-pepper noise models impulse noise (faulty sensor cells, bit errors in transmission): a
random fraction of the pixels is forced to an extreme, half of them to white (salt) and half to
black (pepper). A hit pixel keeps nothing of its true value, and a white speck looks just like
ink. The textbook remedy is the median filter.

Chapters 02 and 03 trained at one noise level and found the model weakest far from it: at light
noise it still smooths as hard as it learnt to, and wipes out detail. Real noise rarely comes at
one known level. The cure costs nothing: draw the level itself at random, for every image of
every batch, so that the model sees light and heavy noise alike and has to judge from the image
how much to repair. This chapter trains both, the same network for the same number of steps:

- the *one-level* model, on NOISE_FRACTION of the pixels hit, as in chapters 02 and 03;
- the *range* model, on a fraction drawn for every image uniformly in TRAIN_RANGE.

Then both are tested across the whole sweep of levels, with the median filter (its window chosen
on held-out images at each level) as the classical reference. The range model is the one saved:
it is the one to use when the noise level is unknown.
"""


def build_denoiser(channels: int, code_dim: int, size: int, name: str) -> keras.Model:
    """Chapter 02's convolutional autoencoder: two strided convolutions, a dense code, two
    transposed convolutions back to a size x size image in [0, 1] (size a multiple of 4), with
    batch normalization and ReLU after every layer but the last."""
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
    """Batch normalization, then ReLU (chapter 02 explains it)."""
    return layers.ReLU(name=name)(layers.BatchNormalization(momentum=0.9)(h))


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
if len(TRAIN_RANGE) != 2:
    raise SettingError(f"TRAIN_RANGE={TRAIN_RANGE!r}: give two fractions, the lowest and the highest, e.g. (0.0,0.9)")

# %%
"""
## Prepare the data and the two kinds of training noise
"""
data = load_data(DATA, DATASET, TRAIN_LIMIT, IMAGE_SIZE)
print(f"data: {data.describe()}")
one_level = Corruption("salt_and_pepper", NOISE_FRACTION, SALT_RATIO)
level_range = LevelRange("salt_and_pepper", *TRAIN_RANGE, salt_ratio=SALT_RATIO)
x_fit, x_held = holdout_split(data.x_train, VALIDATION_SIZE, "VALIDATION_SIZE")
held_noisy = one_level(x_held, corruption.TEST_SEED + 1)
print(f"{len(x_fit):,} training, {len(x_held):,} held-out and {len(data.x_test):,} test images")

# %%
"""
## Train the two models

The same network, loss (binary cross-entropy per pixel, against the clean image), optimizer and
number of steps; only the noise of the training batches differs.
"""
steps = EPOCHS * -(-len(x_fit) // BATCH_SIZE)
models, histories, train_seconds = {}, {}, {}
for name, noise in (("one_level", one_level), ("range", level_range)):
    model = build_denoiser(CHANNELS, CODE_DIM, IMAGE_SIZE, f"{name}_denoiser")
    schedule = keras.optimizers.schedules.CosineDecay(LEARNING_RATE, decay_steps=steps)
    model.compile(optimizer=keras.optimizers.Adam(schedule), loss="binary_crossentropy", jit_compile=use_xla())
    print(f"\n== Training the {name.replace('_', '-')} model: {noise.describe()} ==")
    histories[name], train_seconds[name] = train_autoencoder(
        model,
        x_fit,
        noise,  # a fresh draw for every batch (and, for the range model, a fresh level for every image)
        epochs=EPOCHS,
        batch_size=BATCH_SIZE,
        seed=SEED,
        validation=(held_noisy, x_held),  # both validated at NOISE_FRACTION
        resume_dir=backup_folder(out, settings, name),  # Ctrl-C, then rerun: resumes here
        tensorboard_dir=out / "tensorboard" / name if TENSORBOARD else None,
        preview=held_noisy[:8],
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
x_test_noisy = one_level(clean, corruption.TEST_SEED)  # the same noisy test set on every run
outputs = {name: model.predict(x_test_noisy, batch_size=1000, verbose=0) for name, model in models.items()}
tuning = slice(0, BASELINE_TUNING_IMAGES)
median = classical_denoisers.tune(classical_denoisers.named("median filter"), held_noisy[tuning], x_held[tuning])
outputs["median"] = median(x_test_noisy)
rows = {name: image_quality(clean, x) for name, x in {"noisy": x_test_noisy, **outputs}.items()}
labels = {
    "noisy": "noisy input",
    "one_level": f"one-level model (trained at {NOISE_FRACTION:g})",
    "range": f"range model (trained at {TRAIN_RANGE[0]:g} to {TRAIN_RANGE[1]:g})",
    "median": median.label,
}
print(f"\nTest set: {len(clean):,} images, {one_level.describe()}")
print(f"{'':<42}{'PSNR (dB)':>10}{'SSIM':>8}")
for name, q in rows.items():
    print(f"{labels[name]:<42}{q['psnr_db']:>10.2f}{q['ssim']:>8.3f}")

# %%
"""
## Every level

Both models, and the median filter with its window chosen again on held-out images at each
level, on all the test images hit at each fraction of SWEEP_LEVELS.
"""
print("\n== Both models at every level ==")
sweep = []
for level in SWEEP_LEVELS:
    at_level = one_level.at(level)
    noisy = at_level(clean, corruption.TEST_SEED)
    filter_at_level = classical_denoisers.tune(
        classical_denoisers.named("median filter"), at_level(x_held[tuning], corruption.TEST_SEED + 1), x_held[tuning]
    )
    row = {"level": level, "noisy_psnr_db": float(psnr_per_image(clean, noisy).mean())}
    for name, model in models.items():
        row[f"{name}_psnr_db"] = float(psnr_per_image(clean, model.predict(noisy, batch_size=1000, verbose=0)).mean())
    row["median_size"] = filter_at_level.value
    row["median_psnr_db"] = float(psnr_per_image(clean, filter_at_level(noisy)).mean())
    sweep.append(row)
    print(
        f"  {level:>4.0%} hit: noisy {row['noisy_psnr_db']:6.2f} dB   one-level {row['one_level_psnr_db']:6.2f} dB"
        f"   range {row['range_psnr_db']:6.2f} dB   {filter_at_level.label:<22} {row['median_psnr_db']:6.2f} dB"
    )
eval_seconds = time.perf_counter() - evaluating

# %%
"""
## Visualize and save
"""
plotting.image_rows(
    out / "denoising.png",
    {
        "clean": clean,
        "noisy": x_test_noisy,
        "one-level\nmodel": outputs["one_level"],
        "range\nmodel": outputs["range"],
        "median filter": outputs["median"],
    },
    n=12,
    title=f"Test images, {one_level.describe()}",
)
plotting.curves(
    out / "sweep.png",
    [r["level"] for r in sweep],
    {
        labels["one_level"]: [r["one_level_psnr_db"] for r in sweep],
        labels["range"]: [r["range_psnr_db"] for r in sweep],
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
    ylabel=f"binary cross-entropy per pixel (validation at {NOISE_FRACTION:g})",
)

metrics = {
    "settings": settings,
    "data": data.source,
    "n_train": len(x_fit),
    "n_held_out": len(x_held),
    "n_test": len(clean),
    "noise": one_level.as_dict(),
    "train_range": level_range.as_dict(),
    "noisy_psnr_db": rows["noisy"]["psnr_db"],
    "dae_psnr_db": rows["range"]["psnr_db"],  # the saved model's
    "dae_ssim": rows["range"]["ssim"],
    "one_level_psnr_db": rows["one_level"]["psnr_db"],
    "one_level_ssim": rows["one_level"]["ssim"],
    "median": {**rows["median"], "size": median.value},
    "sweep": sweep,
    "train_seconds": {name: round(s, 1) for name, s in train_seconds.items()},
    "eval_seconds": round(eval_seconds, 1),
    "loss_history": histories,
}
save_model(models["range"], out / "model.keras")  # noisy image in (any level), denoised image out
save_json(out / "metrics.json", metrics)
finish(
    out,
    f"range model {metrics['dae_psnr_db']:.2f} dB, one-level model {metrics['one_level_psnr_db']:.2f} dB "
    f"(noisy {metrics['noisy_psnr_db']:.2f} dB)",
    started,
)
