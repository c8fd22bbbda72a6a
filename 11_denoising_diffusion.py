"""
Title: Denoising diffusion: one denoiser for every level of noise draws new digits
Description: Train one denoiser at every level of Gaussian noise, run it backwards from pure noise
    to draw new digits, and measure them against chapter 08's VAE.
Run: python 11_denoising_diffusion.py                                             (the full run)
     python 11_denoising_diffusion.py --train_limit=5000 --epochs=12 --batch_size=32 \
         --samples=1000 --step_study="(5,10)" --classifier_epochs=3               (a quick look)
"""

# %%
import math
import time
from pathlib import Path

from common import plotting
from common.data import load_data
from common.devices import describe, jit_compile, random_normal, set_random_seed
from common.errors import DataError, SettingError
from common.metrics import frechet_distance
from common.outputs import PROJECT_ROOT, save_arrays, save_json, save_model
from common.script import chapter_definitions, finish, start
from common.stages import Stages
from common.training import backup_folder, train_autoencoder

import keras
import numpy as np
from keras import layers, ops

# --- hyperparameters: edit here, or override on the command line (--epochs=5) ---
# data
DATASET = "mnist"  # "mnist" or "fashion_mnist" (ignored when DATA is set)
DATA = None  # an .npz, a folder of MNIST IDX files, or a folder of your own labelled images
IMAGE_SIZE = 28  # images are made grey squares of IMAGE_SIZE x IMAGE_SIZE pixels (a multiple of 4)
TRAIN_LIMIT = None  # use only the first N training images (None: all 60,000)
# noise levels, standard deviations in units of pixels scaled to [-1, 1] (Karras et al. 2022)
SIGMA_DATA = 0.5  # the spread of the images, as the scaling of the denoiser assumes it
LEVEL_MEAN = -1.2  # training levels: log(sigma) drawn from a normal of this mean...
LEVEL_STD = 1.2  # ...and this standard deviation, afresh for every image of every batch
SIGMA_MIN = 0.002  # the lowest level the sampler visits before its last step, to none
SIGMA_MAX = 80.0  # the level the sampler starts from: pure noise
# model
FILTERS = (16, 32, 64)  # channels of the U-Net at 28x28, 14x14 and 7x7
# training
EPOCHS = 6  # passes over the training images
BATCH_SIZE = 128  # images per gradient step
LEARNING_RATE = 2e-3  # Adam's step size, decayed to zero over training (cosine)
EMA_MOMENTUM = 0.995  # the weights kept: their average over the last ~1 / (1 - this) steps
SEED = 0  # seeds every random draw: NumPy's, Python's and the backend's, the noise too
# drawing and measuring
SAMPLES = 10000  # digits drawn from pure noise, saved in samples.npz and measured
SAMPLING_STEPS = 10  # steps of the sampler from SIGMA_MAX down to 0 (2 x steps - 1 denoisings)
STEP_STUDY = (5, 10, 20, 40)  # step counts compared, each on the first STEP_STUDY_SAMPLES starts
STEP_STUDY_SAMPLES = 1000  # digits drawn for each step count of the study
CLASSIFIER_EPOCHS = 2  # passes of the small digit classifier that measures the samples
VAE_DIR = None  # where chapter 08 saved decoder.keras (None: outputs/08_variational_autoencoder)
VAE_EPOCHS = 5  # epochs of 08's VAE, trained here where VAE_DIR holds no decoder.keras
# output
OUTPUT_DIR = None  # where figures, metrics.json, samples.npz and models/ go (None: outputs/11_...)

# %%
"""
## Introduction

Chapter 02 trained a denoiser for one level of Gaussian noise, 04 one for every level of
salt-and-pepper noise, 08 a generator whose digits come out blurred. A *diffusion model* is a
denoiser trained at every level of noise, from almost none to so much that no digit is left, then
run backwards from pure noise (Sohl-Dickstein et al. 2015; Ho et al. 2020, "DDPM").

Pixels are scaled to [-1, 1]; a level sigma is a standard deviation in those units. The denoiser
D(x; sigma) guesses the digit y in x = y + sigma n, n ~ N(0, I): a small U-Net (09's skips, at
28x28, 14x14 and 7x7) told the level by dense units added to its maps. Four choices make it learn
in minutes (Karras et al. 2022, "EDM"):
- *the levels trained most*: log(sigma) ~ N(-1.2, 1.2^2), the middle ones, where a denoiser can
  still improve, rather than the hopeless or the trivial (EDM, sec. 5);
- *what the network F predicts*: D = c_skip x + c_out F, a correction of x at low levels, the
  digit itself at high ones (EDM, eq. 7; DDPM predicts the noise n);
- *its scaling*: F's input c_in x and its target have a spread of 1 at every level, and the loss
  weight 1 / c_out^2 gives every level the same say (EDM, Table 1);
- *an average of the weights*, steadier than the last step's (DDPM; EDM).
Flow matching (Lipman et al. 2023) trains the same denoiser with another schedule of levels.
"""


def build_unet(filters: tuple[int, int, int], size: int) -> keras.Model:
    """F: the scaled noisy image c_in x and the level c_noise in; an image-sized output."""
    image = keras.Input((size, size, 1), name="scaled_noisy")
    c_noise = keras.Input((1,), name="c_noise")
    level = layers.Dense(64, activation="silu")(c_noise)  # the level, as 64 numbers
    level = layers.Dense(64, activation="silu")(level)

    def block(h, channels):  # two 3x3 convolutions, the level added between them
        h = layers.Conv2D(channels, 3, padding="same")(h)
        told = layers.Reshape((1, 1, channels))(layers.Dense(channels)(level))
        h = layers.Activation("silu")(h + told)
        return layers.Conv2D(channels, 3, padding="same", activation="silu")(h)

    h = block(image, filters[0])
    skips = [h]
    for channels in filters[1:]:  # down: 28 -> 14 -> 7
        h = layers.Conv2D(channels, 3, strides=2, padding="same")(h)
        h = block(h, channels)
        skips.append(h)
    whole = layers.Dense(512, activation="silu")(layers.Flatten()(h))  # sees all the 7x7 maps
    h = h + layers.Reshape(h.shape[1:])(layers.Dense(math.prod(h.shape[1:]))(whole))
    for channels, skip in zip(reversed(filters[:-1]), reversed(skips[:-1])):  # up, with the skips
        h = layers.Conv2DTranspose(channels, 2, strides=2)(h)
        h = block(layers.Concatenate()([h, skip]), channels)
    return keras.Model([image, c_noise], layers.Conv2D(1, 3, padding="same")(h), name="unet")


def build_denoiser(unet: keras.Model, size: int) -> keras.Model:
    """D(x; sigma) = c_skip x + c_out F(c_in x; c_noise) (EDM, Table 1): noisy image, level in."""
    noisy = keras.Input((size, size), name="noisy")
    sigma = keras.Input((), name="sigma")
    s = ops.reshape(sigma, (-1, 1, 1))
    spread = ops.sqrt(s**2 + SIGMA_DATA**2)  # of the noisy images
    c_skip = SIGMA_DATA**2 / spread**2
    c_out = s * SIGMA_DATA / spread
    c_in = 1 / spread
    c_noise = ops.log(ops.reshape(sigma, (-1, 1))) / 4
    f = unet([ops.expand_dims(c_in * noisy, -1), c_noise])[..., 0]
    return keras.Model([noisy, sigma], c_skip * noisy + c_out * f, name="denoiser")


def denoising_loss(denoiser, clean, sigma, noise):
    """Per image, the squared error of the guess x lambda(sigma) = 1 / c_out^2 (EDM, eq. 8)."""
    guess = denoiser([clean + ops.reshape(sigma, (-1, 1, 1)) * noise, sigma])
    weight = (sigma**2 + SIGMA_DATA**2) / (sigma * SIGMA_DATA) ** 2
    return weight * ops.mean(ops.square(guess - clean), axis=(1, 2))


class NoiseLevels(layers.Layer):
    """For each image, afresh: log(sigma) ~ N(LEVEL_MEAN, LEVEL_STD^2), and noise n ~ N(0, I)."""

    def __init__(self, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, clean):
        draw = random_normal(ops.shape(clean)[:1], self.seed_generator)  # fast in XLA
        noise = random_normal(ops.shape(clean), self.seed_generator)
        return ops.exp(LEVEL_MEAN + LEVEL_STD * draw), noise


# %%
"""
## Setup and data

Settings (`--help` lists them) checked, SEED set; after Ctrl-C the same command resumes (see 05).
"""
started = time.perf_counter()
checks = {"STEP_STUDY": "count", "EMA_MOMENTUM": "fraction_below_one", "SIGMA_DATA": "positive"}
checks |= dict.fromkeys(("LEVEL_STD", "SIGMA_MIN", "SIGMA_MAX"), "positive")
settings, out = start(globals(), checks=checks)
if SIGMA_MIN >= SIGMA_MAX:
    raise SettingError(f"SIGMA_MIN={SIGMA_MIN}: must be below SIGMA_MAX={SIGMA_MAX}")
if IMAGE_SIZE % 4:
    raise SettingError(f"IMAGE_SIZE={IMAGE_SIZE}: the U-Net halves it twice: a multiple of 4")
stages = Stages(backup_folder(out, settings, "stages"), SEED)  # Ctrl-C, then rerun: resumes here
data = load_data(DATA, DATASET, TRAIN_LIMIT, IMAGE_SIZE)
print(f"data: {data.describe()}")
if not data.labelled:
    raise DataError(f"{data.source}: the samples are measured by a classifier, which needs labels")
x_train = 2 * data.x_train - 1


def to_pixels(x):  # from [-1, 1] back to grey levels in [0, 1]
    return np.clip((np.asarray(x) + 1) / 2, 0, 1).astype(np.float32)


# %%
"""
## Train

Each digit is seen at EPOCHS levels, drawn afresh with its noise inside the model that trains,
whose output is the loss. Adam keeps the moving average of the weights (`use_ema`) and gives it
to the model at the end. No XLA under TensorFlow: slower for these convolutions on a CPU (09).
"""
unet = build_unet(tuple(FILTERS), IMAGE_SIZE)
denoiser = build_denoiser(unet, IMAGE_SIZE)


def train_denoiser():
    steps = EPOCHS * math.ceil(len(x_train) / BATCH_SIZE)
    schedule = keras.optimizers.schedules.CosineDecay(LEARNING_RATE, decay_steps=steps)
    optimizer = keras.optimizers.Adam(schedule, use_ema=True, ema_momentum=EMA_MOMENTUM)
    clean = keras.Input(x_train.shape[1:])
    sigma, noise = NoiseLevels(SEED)(clean)  # the model that trains: clean images in, loss out
    model = keras.Model(clean, denoising_loss(denoiser, clean, sigma, noise))
    # the model's output is its loss: the loss function passes it on (the target is a placeholder)
    model.compile(optimizer, loss=lambda _, output: output, jit_compile=jit_compile(False))
    history, seconds = train_autoencoder(
        model,
        x_train,  # the clean images: the noise is drawn inside the model
        np.zeros(len(x_train)),  # a placeholder target
        epochs=EPOCHS,
        batch_size=BATCH_SIZE,
        resume_dir=stages.subfolder("denoiser"),  # Ctrl-C, then rerun: resumes at its last epoch
    )
    return denoiser.get_weights(), history, seconds


print(f"\n== The denoiser, {unet.count_params():,} weights, {EPOCHS} epochs ==")
weights, history, train_seconds = stages.run("denoiser", train_denoiser)
denoiser.set_weights(weights)
denoiser.compile(jit_compile=jit_compile(False))  # its predictions: without XLA, faster here


def denoise(x, sigma):  # D(x; sigma) for noisy images x, all at the level sigma
    levels = np.full(len(x), sigma, np.float32)
    return denoiser.predict([x.astype(np.float32), levels], batch_size=1000, verbose=0)


# %%
"""
## Why a denoiser knows where the digits are

Trained on squared error, a denoiser's guess is the average of the clean digits that could have
become x, so D(x; sigma) - x points from x towards the digits, the further the less likely x is.
It is sigma^2 times the *score*, the gradient of the log-density of noisy digits (Vincent 2011;
EDM, eq. 3): grad_x log p(x; sigma) = (D(x; sigma) - x) / sigma^2. In `levels.png`, at low levels
the guess is the digit; at high ones, a blur of the digits it could be; at the highest, their mean.
"""
digit = 2 * data.x_test[:1] - 1  # a test digit, in [-1, 1]
noise_draw = np.random.default_rng(SEED).standard_normal(digit.shape).astype(np.float32)
level_pictures = {"noisy x": {}, "guess D(x)": {}}
for sigma in (0.1, 0.3, 1.0, 3.0, 10.0, 80.0):
    noisy = digit + sigma * noise_draw
    level_pictures["noisy x"][f"sigma {sigma:g}"] = to_pixels(noisy[0])
    level_pictures["guess D(x)"][f"sigma {sigma:g}"] = to_pixels(denoise(noisy, sigma)[0])

# %%
"""
## Drawing digits

From pure noise, x = 80 n, follow the arrow: dx/dsigma = (x - D(x; sigma)) / sigma down to 0, the
*probability flow* (Song et al. 2021; EDM, eq. 4), in SAMPLING_STEPS steps spaced evenly in
sigma^(1/7), close near 0 (EDM, eq. 5), each by Heun's method: an Euler step corrected by the
slope where it lands (EDM, Algorithm 1). No randomness after the start.
"""


def draw(denoise, start: np.ndarray, steps: int, keep_path: bool = False):
    """Images from normal `start`s by Heun's method; keep_path: also the first one's path."""
    top = SIGMA_MAX ** (1 / 7)  # the levels: evenly spaced in sigma^(1/7), then 0 (EDM, eq. 5)
    bottom = SIGMA_MIN ** (1 / 7)
    levels = np.append((top + np.linspace(0, 1, steps) * (bottom - top)) ** 7, 0.0)
    x = start * levels[0]
    path = []
    for sigma, sigma_next in zip(levels[:-1], levels[1:]):
        guess = denoise(x, sigma)
        path.append((sigma, x[0], guess[0]))
        slope = (x - guess) / sigma
        x_next = x + (sigma_next - sigma) * slope
        if sigma_next > 0:  # Heun's correction: the mean of the slopes at both ends
            slope_next = (x_next - denoise(x_next, sigma_next)) / sigma_next
            x_next = x + (sigma_next - sigma) * (slope + slope_next) / 2
        x = x_next
    return (x, path) if keep_path else x


starts = np.random.default_rng(SEED + 1).standard_normal((SAMPLES, *x_train.shape[1:]), np.float32)

print(f"\n== Drawing {SAMPLES:,} digits in {SAMPLING_STEPS} steps ==")
samples = stages.run("samples", lambda: to_pixels(draw(denoise, starts, SAMPLING_STEPS)))
_, path = draw(denoise, starts[:1], SAMPLING_STEPS, keep_path=True)  # the first, step by step

# %%
"""
## Against the VAE

A small classifier trained on the training digits sees an image as the 64 numbers of its last
hidden layer. The *Frechet distance* between normals fitted to those of two sets of images (Heusel
et al. 2017, on Inception's features) adds the distance of their means to the difference of their
spreads: low only where the samples are like the test digits *and* as varied. Beside it, the share
named with confidence >= 0.9 and how often each class is drawn; for as many images of chapter
08's VAE, decoded from codes drawn from its prior (where 08 has not been run, its VAE is trained
here for VAE_EPOCHS epochs), of real training digits (the floor), and of uniform noise.
"""
print("\n== The classifier that measures ==")
set_random_seed(SEED)  # the same classifier, whether the stages above ran now or were loaded
image = keras.Input(x_train.shape[1:])
h = layers.Reshape((*x_train.shape[1:], 1))(image)
h = layers.MaxPooling2D()(layers.Conv2D(32, 3, activation="relu")(h))
h = layers.MaxPooling2D()(layers.Conv2D(64, 3, activation="relu")(h))
h = layers.Dense(64, activation="relu", name="features")(layers.Flatten()(h))
classifier = keras.Model(image, layers.Dense(len(data.class_names), activation="softmax")(h))
classifier.compile("adam", "sparse_categorical_crossentropy", jit_compile=jit_compile())
classifier.fit(data.x_train, data.y_train, batch_size=128, epochs=CLASSIFIER_EPOCHS, verbose=2)
features = keras.Model(classifier.input, classifier.get_layer("features").output)
test_accuracy = float(np.mean(classifier.predict(data.x_test, verbose=0).argmax(1) == data.y_test))
print(f"test accuracy {test_accuracy:.4f}")

saved_decoder = Path(VAE_DIR or PROJECT_ROOT / "outputs" / "08_variational_autoencoder")
saved_decoder /= "decoder.keras"
vae_source = f"chapter 08's saved decoder, {saved_decoder}"
vae_decoder = keras.models.load_model(saved_decoder) if saved_decoder.is_file() else None
if vae_decoder is None or vae_decoder.output_shape[1:] != x_train.shape[1:]:
    vae_source = f"chapter 08's VAE trained here for {VAE_EPOCHS} epochs (no {saved_decoder})"
    print(f"\n== {vae_source}, by 08's own functions ==")
    vae08 = chapter_definitions(PROJECT_ROOT / "08_variational_autoencoder.py")
    encoder = vae08.build_encoder(32, (512, 256), IMAGE_SIZE, variational=True)
    vae_decoder = vae08.build_decoder(32, (512, 256), IMAGE_SIZE)
    vae = vae08.with_loss_terms(encoder, vae_decoder, True, SEED)
    losses = {"reconstruction": vae08.term_is_the_loss, "kl": vae08.term_is_the_loss}
    vae.compile(keras.optimizers.Adam(1e-3), loss=losses, jit_compile=jit_compile())
    no_target = {"reconstruction": np.zeros(len(x_train)), "kl": np.zeros(len(x_train))}
    train_autoencoder(vae, data.x_train, no_target, epochs=VAE_EPOCHS, batch_size=128)
code_dim = vae_decoder.input_shape[-1]
codes = np.random.default_rng(SEED + 2).standard_normal((SAMPLES, code_dim), np.float32)
vae_samples = vae_decoder.predict(codes, batch_size=1000, verbose=0)


def measure(images: np.ndarray) -> dict:
    """The distance to the test digits, the share named with confidence >= 0.9, class shares."""
    probabilities = classifier.predict(images, batch_size=1000, verbose=0)
    named = np.bincount(probabilities.argmax(1), minlength=probabilities.shape[1])
    return {
        "frechet_distance": frechet_distance(features.predict(images, verbose=0), test_features),
        "confident": float(np.mean(probabilities.max(1) >= 0.9)),
        "class_shares": (named / len(images)).tolist(),
    }


n = min(SAMPLES, len(x_train))
test_features = features.predict(data.x_test, batch_size=1000, verbose=0)
sets = {
    "real training digits": data.x_train[:n],
    "diffusion": samples[:n],
    "VAE (08)": vae_samples[:n],
    "uniform noise": np.random.default_rng(SEED + 3).random(samples[:n].shape, np.float32),
}
results = {name: measure(images) for name, images in sets.items()}
print(f"\n{n:,} images each, against the {len(data.x_test):,} test digits ({vae_source}):")
print(f"{'':<24}{'Frechet distance':>17}{'confident':>11}{'least, most drawn class':>25}")
for name, r in results.items():
    shares = f"{min(r['class_shares']):.1%}, {max(r['class_shares']):.1%}"
    print(f"{name:<24}{r['frechet_distance']:>17.2f}{r['confident']:>11.1%}{shares:>25}")

# %%
"""
## How many steps

The first STEP_STUDY_SAMPLES starts, drawn with each step count (fewer images: higher distances).
"""
study_n = min(STEP_STUDY_SAMPLES, n)
study_floor = measure(data.x_train[:study_n])["frechet_distance"]
step_study = {}
for steps in STEP_STUDY:
    images = samples[:study_n]  # the samples above, when they took as many steps
    if steps != SAMPLING_STEPS:
        images = to_pixels(draw(denoise, starts[:study_n], steps))
    step_study[steps] = measure(images)["frechet_distance"]
    print(f"{steps:>4} steps ({2 * steps - 1} denoisings): distance {step_study[steps]:.2f}")
print(f"{study_n:,} real training digits: {study_floor:.2f}")

# %%
"""
## Visualize and save

The pictures, the denoiser and the classifier, the samples (grey levels in [0, 1]).
"""
plotting.level_rows(out / "levels.png", level_pictures, title="A test digit: noisy, and the guess")
shown = np.linspace(0, len(path) - 1, min(len(path), 5)).round().astype(int)
path_pictures = {
    "x": {f"sigma {path[i][0]:.3g}": to_pixels(path[i][1]) for i in shown} | {"0": samples[0]},
    "guess D(x)": {f"sigma {path[i][0]:.3g}": to_pixels(path[i][2]) for i in shown},
}
plotting.level_rows(out / "sampling_path.png", path_pictures, title="From pure noise to a digit")
grids = {
    f"diffusion, {SAMPLING_STEPS} steps": samples[:100].reshape(10, 10, IMAGE_SIZE, IMAGE_SIZE),
    "VAE (08), codes from N(0, I)": vae_samples[:100].reshape(10, 10, IMAGE_SIZE, IMAGE_SIZE),
}
plotting.image_grids(out / "samples.png", grids, title="New digits: the first 100 of each")
series = {"diffusion": list(step_study.values()), "real digits": [study_floor] * len(step_study)}
ylabel = f"Frechet distance to the test digits ({study_n:,} images)"
plotting.curves(out / "steps.png", list(STEP_STUDY), series, "steps", ylabel, logx=True)
plotting.loss_curves(out / "loss.png", {"denoiser": history}, ylabel="weighted squared error")

metrics = {
    "settings": settings,
    "keras": describe(),
    "data": data.source,
    "n_train": len(x_train),
    "classifier_test_accuracy": test_accuracy,
    "vae": vae_source,
    "n_measured": n,
    "measures": results,
    "step_study": {"n": study_n, "frechet_distance": step_study, "real_digits": study_floor},
    "loss_history": history["loss"],
    "seconds": {"training": train_seconds, "total": time.perf_counter() - started},
}
(out / "models").mkdir(exist_ok=True)
save_model(denoiser, out / "models" / "denoiser.keras")  # a noisy image and its level in
save_model(classifier, out / "models" / "classifier.keras")
save_arrays(out / "samples.npz", images=samples)
save_json(out / "metrics.json", metrics)
stages.finished()
distances = [f"{name} {r['frechet_distance']:.2f}" for name, r in results.items()]
finish(out, f"Frechet distance to the test digits: {', '.join(distances)}", started)
