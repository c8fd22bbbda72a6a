"""
Title: Filling in what was wiped out: masking noise
Description: Train a denoising autoencoder to rebuild images of which half the pixels were set to
    0, without ever telling it which, and compare it with a classical inpainting that is told
    exactly where the holes are.
Run: python 03_masking_denoising.py                                 (the full run)
     python 03_masking_denoising.py --train_limit=5000 --epochs=6 \
         --inpainting_images=200                                    (a quick look)
"""

# %%
import math
import time

from common import classical_denoisers, plotting
from common.corruption import Corruption
from common.data import TEST_SEED, holdout_split, load_data
from common.devices import describe, jit_compile
from common.errors import SettingError
from common.metrics import image_quality, psnr_per_image
from common.outputs import save_json, save_model
from common.script import finish, start
from common.training import backup_folder, train_autoencoder

import keras
import numpy as np
from keras import layers
from skimage.restoration import inpaint_biharmonic

# --- hyperparameters: edit here, or override on the command line (--masking=0.25) ---
# data
DATASET = "mnist"  # "mnist" or "fashion_mnist" (ignored when DATA is set)
DATA = None  # an .npz, a folder of MNIST IDX files, or a folder of your own images (see the README)
IMAGE_SIZE = 28  # images are made grey squares of IMAGE_SIZE x IMAGE_SIZE pixels (a multiple of 4)
TRAIN_LIMIT = None  # use only the first N training images (None: all of them)
VALIDATION_SIZE = None  # the last N training images, held out: never trained on (None: a twelfth,
#                         at most 5,000)
# noise
MASKING = 0.5  # fraction of the pixels set to 0, chosen at random for every image
SWEEP_LEVELS = (0.1, 0.3, 0.5, 0.7, 0.9)  # fractions to test the model at
# model
FILTERS = (32, 64)  # filters of the two convolutions of the encoder; the decoder mirrors them
CODE_DIM = 512  # size of the code: the dense layer in the middle
# training
EPOCHS = 6  # passes over the training images
BATCH_SIZE = 128  # images per gradient step
LEARNING_RATE = 4e-3  # Adam's step size, decayed to zero over training (cosine)
SEED = 0  # seeds every random draw: NumPy's, Python's and the backend's, the training masks too
STRATEGY = None  # None: one device; "mirrored": split every batch over all local devices
# evaluation
INPAINTING_IMAGES = 1000  # first N test images also given to the biharmonic inpainting (a few ms an
#                           image)
CLASSICAL_TUNING_IMAGES = 500  # validation images on which the Gaussian blur's width is chosen
# output
TENSORBOARD = False  # also write TensorBoard logs (losses, and outputs every 2 epochs) to
#                      OUTPUT_DIR/tensorboard
OUTPUT_DIR = None  # where figures, metrics.json and model.keras go (None:
#                    outputs/03_masking_denoising)

# %%
"""
## Introduction

Masking noise is the corruption Vincent et al. (2010) use most: a random fraction of the pixels
(MASKING, a half by default) is set to 0, as if wiped out (dead pixels, lost packets, occlusion).
The denoising autoencoder of chapter 02 is trained on it here, with a fresh mask for every batch,
and it is **never told which pixels were wiped**: a 0 in its input may be background or a lost
piece of stroke, and only the shape of the digit around it can tell. Rebuilding a wiped pixel from
the others is exactly the dependency between pixels that a good representation has to capture.

What should it be compared with? Noise filters (chapter 02's) are built for noise *added* to a
signal and know nothing of holes: the best they can do is blur them shut. The fair reference is an
*inpainting* method, which fills holes from their surroundings, and it gets an advantage the
autoencoder never has: it is **told exactly where the holes are**. Here that is scikit-image's
`inpaint_biharmonic`, which fills the masked pixels with the smoothest surface (the solution of
the biharmonic equation) that agrees with every pixel that was kept.

Two numbers tell the story: the PSNR of the whole image, and the PSNR of the wiped pixels alone,
where all the work is (pooled over all the wiped pixels of the images scored).
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


def inpaint(masked: np.ndarray, wiped: np.ndarray) -> np.ndarray:
    """Biharmonic inpainting of each image, told which pixels were wiped (`wiped` is True there)."""
    return np.stack([inpaint_biharmonic(image, hole) for image, hole in zip(masked, wiped)]).astype(
        np.float32
    )


def psnr_of_wiped_pixels(clean: np.ndarray, estimate: np.ndarray, wiped: np.ndarray) -> float:
    """PSNR (dB, data range 1) over the wiped pixels of all the images together."""
    mse = np.mean((clean[wiped] - estimate[wiped]) ** 2)
    return float(10 * np.log10(1 / mse))


# %%
"""
## Setup

Apply the command line's overrides to the constants above (`--help` lists them), create and
check the output folder, and seed every random generator with SEED.
"""
started = time.perf_counter()
settings, out = start(globals(), checks={"SWEEP_LEVELS": "fraction"})
if IMAGE_SIZE % 4:
    raise SettingError(
        f"IMAGE_SIZE={IMAGE_SIZE}: the model halves the image twice, so use a multiple of 4 (28)"
    )

# %%
"""
## Prepare the data and the masks

The test images are masked once, with the fixed TEST_SEED (the validation images with TEST_SEED
+ 1), so every run is scored on the same masked images. The masking is also reproduced on its own
(which pixels were hit) for the inpainting: a pixel that was already 0 and got masked is still a
hole the inpainting must fill, though it looks the same in the image.
"""
data = load_data(DATA, DATASET, TRAIN_LIMIT, IMAGE_SIZE)
print(f"data: {data.describe()}")
masking = Corruption("masking", MASKING)
x_fit, x_val = holdout_split(data.x_train, VALIDATION_SIZE, "VALIDATION_SIZE")
x_val_masked = masking(x_val, TEST_SEED + 1)
x_test_masked = masking(data.x_test, TEST_SEED)


def wiped_pixels(images: np.ndarray, fraction: float) -> np.ndarray:
    """Which pixels the masking with the test seed hits, found by masking an image of ones."""
    return Corruption("masking", fraction)(np.ones_like(images), TEST_SEED) == 0


wiped = wiped_pixels(data.x_test, MASKING)
assert np.array_equal(x_test_masked, np.where(wiped, 0, data.x_test))  # the same holes
print(
    f"{len(x_fit):,} training, {len(x_val):,} validation and {len(data.x_test):,} test images; "
    f"{masking.describe()}"
)

# %%
"""
## Build and train the denoising autoencoder

Masked in, clean out, binary cross-entropy per pixel: as in chapter 02, the model that trains is
the corruption, a fresh mask for every batch, followed by the denoiser.
"""
model = build_denoiser(FILTERS, CODE_DIM, IMAGE_SIZE, "denoising_autoencoder")
masking_then_model = keras.Sequential(
    [keras.Input(model.input_shape[1:]), masking.layer(SEED), model]
)
steps = EPOCHS * math.ceil(len(x_fit) / BATCH_SIZE)
schedule = keras.optimizers.schedules.CosineDecay(LEARNING_RATE, decay_steps=steps)
optimizer = keras.optimizers.Adam(schedule)
masking_then_model.compile(
    optimizer=optimizer, loss="binary_crossentropy", jit_compile=jit_compile()
)
print("\n== Training the denoising autoencoder (masked in, clean out) ==")
history, train_seconds = train_autoencoder(
    masking_then_model,
    x_fit,  # the input, masked by the model's first layer
    x_fit,  # the target: the clean image
    epochs=EPOCHS,
    batch_size=BATCH_SIZE,
    validation=(x_val_masked, x_val),
    resume_dir=backup_folder(out, settings, "denoising"),  # Ctrl-C, then rerun: resumes here
    tensorboard_dir=out / "tensorboard" if TENSORBOARD else None,
    preview=x_val_masked[:8],
)

# %%
"""
## Evaluate: not told where the holes are, against told

On all the test images: the masked input, the autoencoder, and a noise filter for reference (a
Gaussian blur, its width chosen on validation images). On the first INPAINTING_IMAGES of them,
also the biharmonic inpainting, given the mask, with the autoencoder on the same images.
"""
evaluating = time.perf_counter()
# the masked images go in, no mask
restored = model.predict(x_test_masked, batch_size=1000, verbose=0)
tuning = slice(0, CLASSICAL_TUNING_IMAGES)
blur = classical_denoisers.tune(
    classical_denoisers.named("Gaussian blur"), x_val_masked[tuning], x_val[tuning]
)
blurred = blur(x_test_masked)
inpainting_subset = slice(0, INPAINTING_IMAGES)  # the first test images
inpainting_started = time.perf_counter()
# told which pixels are holes
inpainted = inpaint(x_test_masked[inpainting_subset], wiped[inpainting_subset])
inpainting_seconds = time.perf_counter() - inpainting_started

clean = data.x_test
rows = {
    "masked input": (
        image_quality(clean, x_test_masked),
        psnr_of_wiped_pixels(clean, x_test_masked, wiped),
    ),
    "denoising autoencoder": (
        image_quality(clean, restored),
        psnr_of_wiped_pixels(clean, restored, wiped),
    ),
    blur.label: (image_quality(clean, blurred), psnr_of_wiped_pixels(clean, blurred, wiped)),
}
n_inpainted = len(clean[inpainting_subset])
subset_rows = {
    "denoising autoencoder (not told)": (
        image_quality(clean[inpainting_subset], restored[inpainting_subset]),
        psnr_of_wiped_pixels(
            clean[inpainting_subset], restored[inpainting_subset], wiped[inpainting_subset]
        ),
    ),
    "biharmonic inpainting (told)": (
        image_quality(clean[inpainting_subset], inpainted),
        psnr_of_wiped_pixels(clean[inpainting_subset], inpainted, wiped[inpainting_subset]),
    ),
}
print(f"\n{masking.describe()}")
print(f"{'':<40}{'PSNR (dB)':>10}{'SSIM':>8}{'wiped pixels (dB)':>19}")
print(f"All {len(clean):,} test images:")
for name, (q, holes) in rows.items():
    print(f"  {name:<38}{q['psnr_db']:>10.2f}{q['ssim']:>8.3f}{holes:>19.2f}")
print(f"The first {n_inpainted:,}:")
for name, (q, holes) in subset_rows.items():
    print(f"  {name:<38}{q['psnr_db']:>10.2f}{q['ssim']:>8.3f}{holes:>19.2f}")
print(
    f"(the inpainting took {inpainting_seconds:.1f} s, "
    f"{1000 * inpainting_seconds / n_inpainted:.0f} ms an image)"
)

# %%
"""
## One masking level in training, every level in testing

The model was trained at MASKING only. On the first INPAINTING_IMAGES test images, masked
at each level: the autoencoder (not told), and the inpainting (told), by the PSNR of the whole
images and of the wiped pixels alone.
"""
print(
    f"\n== The model trained at {MASKING:.0%}, tested at every level (first {n_inpainted:,} test "
    "images) =="
)
sweep = []
for level in SWEEP_LEVELS:
    holes = wiped_pixels(clean[inpainting_subset], level)
    masked = np.where(holes, 0, clean[inpainting_subset])
    restored_at_level = model.predict(masked, batch_size=1000, verbose=0)
    inpainted_at_level = inpaint(masked, holes)
    row = {
        "level": level,
        "masked_psnr_db": float(psnr_per_image(clean[inpainting_subset], masked).mean()),
        "dae_psnr_db": float(psnr_per_image(clean[inpainting_subset], restored_at_level).mean()),
        "inpainting_psnr_db": float(
            psnr_per_image(clean[inpainting_subset], inpainted_at_level).mean()
        ),
        "dae_wiped_pixels_psnr_db": psnr_of_wiped_pixels(
            clean[inpainting_subset], restored_at_level, holes
        ),
        "inpainting_wiped_pixels_psnr_db": psnr_of_wiped_pixels(
            clean[inpainting_subset], inpainted_at_level, holes
        ),
    }
    sweep.append(row)
    print(
        f"  {level:>4.0%} masked {row['masked_psnr_db']:6.2f} dB   autoencoder "
        f"{row['dae_psnr_db']:6.2f} dB"
        f" ({row['dae_wiped_pixels_psnr_db']:.2f} on the wiped pixels)   inpainting "
        f"{row['inpainting_psnr_db']:6.2f} dB"
        f" ({row['inpainting_wiped_pixels_psnr_db']:.2f})"
    )
evaluation_seconds = time.perf_counter() - evaluating

# %%
"""
## Visualize and save

The row of holes (white: wiped) is what the inpainting is told and the autoencoder is not.
"""
shown = slice(0, 12)
plotting.image_rows(
    out / "denoising.png",
    {
        "clean": clean[shown],
        "masked": x_test_masked[shown],
        "holes": wiped[shown].astype(np.float32),
        "autoencoder\n(not told)": restored[shown],
        "inpainting\n(told)": inpainted[shown],
        blur.denoiser.name: blurred[shown],
    },
    n=12,
    title=f"Test images, {masking.describe()}",
)
plotting.curves(
    out / "sweep.png",
    [r["level"] for r in sweep],
    {
        "denoising autoencoder (not told)": [r["dae_psnr_db"] for r in sweep],
        "biharmonic inpainting (told)": [r["inpainting_psnr_db"] for r in sweep],
        "masked input": [r["masked_psnr_db"] for r in sweep],
    },
    xlabel="fraction of pixels masked",
    ylabel=f"PSNR (dB), first {n_inpainted:,} test images",
    title=f"One model trained at {MASKING:.0%}, tested at every level",
    marker_at=MASKING,
)
plotting.loss_curves(
    out / "loss.png", {"denoising AE": history}, ylabel="binary cross-entropy per pixel"
)


def figures(q: dict[str, float], holes: float) -> dict[str, float]:
    return q | {"wiped_pixels_psnr_db": holes}


metrics = {
    "settings": settings,
    "keras": describe(),
    "data": data.source,
    "n_train": len(x_fit),
    "n_validation": len(x_val),
    "n_test": len(clean),
    "n_inpainting": n_inpainted,
    "noise": masking.as_dict(),
    "masked_psnr_db": rows["masked input"][0]["psnr_db"],
    "dae_psnr_db": rows["denoising autoencoder"][0]["psnr_db"],
    "dae_ssim": rows["denoising autoencoder"][0]["ssim"],
    "test": {name: figures(*r) for name, r in rows.items()},
    "first_images": {name: figures(*r) for name, r in subset_rows.items()},
    "blur_sigma": blur.value,
    "sweep": sweep,
    "loss_history": history,
    "seconds": {
        "training": round(train_seconds, 1),
        "inpainting": round(inpainting_seconds, 1),
        "evaluation": round(evaluation_seconds, 1),
        "total": round(time.perf_counter() - started, 1),
    },
}
save_model(model, out / "model.keras")  # masked image in, restored image out
save_json(out / "metrics.json", metrics)
finish(
    out,
    f"restored test PSNR {metrics['dae_psnr_db']:.2f} dB (masked {metrics['masked_psnr_db']:.2f} "
    "dB)",
    started,
)
