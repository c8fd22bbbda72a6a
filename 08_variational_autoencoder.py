"""
Title: Variational autoencoders: from a code that compresses to a code you can sample
Description: Make the encoder output a distribution and pay for straying from a standard normal,
    and every code decodes to a digit; measure the model as a density (ELBO and an
    importance-weighted estimate of the likelihood) and set it beside a plain autoencoder.
Run: python 08_variational_autoencoder.py      (add --epochs=5 --train_limit=10000 for a quick look)
"""

# %%
import math
import time

from common import plotting
from common.data import load_data
from common.devices import use_xla
from common.errors import SettingError
from common.outputs import save_json, save_model
from common.script import finish, start
from common.training import backup_folder, train_autoencoder

import keras
import numpy as np
import tensorflow as tf
from keras import layers, ops
from scipy.stats import norm

# --- hyperparameters: edit here, or override on the command line (--epochs=5) ---
# data
DATASET = "mnist"  # "mnist" or "fashion_mnist" (ignored when DATA is set)
DATA = None  # an .npz, a folder of MNIST IDX files, or a folder of your own images (see the README)
IMAGE_SIZE = 28  # images are made grey squares of IMAGE_SIZE x IMAGE_SIZE pixels
TRAIN_LIMIT = None  # use only the first N training images (None: all 60,000)
VALIDATION_FRACTION = 0.1  # of the training images held out for the validation loss (0: none)
VALIDATION_LIMIT = 5000  # ... but at most this many
# model
CODE_DIM = 20  # size of the code z, the latent variable
HIDDEN_UNITS = (512, 256)  # encoder layer widths; the decoder mirrors them
# training
EPOCHS = 35  # passes over the training images (the VAE with CODE_DIM numbers)
BATCH_SIZE = 256  # images per gradient step
LEARNING_RATE = 3e-3  # Adam's step size, decayed to zero over training (cosine)
SEED = 0  # seeds NumPy, Python and TensorFlow
STRATEGY = None  # None: one device; "mirrored": split every batch over all local GPUs (or 2 CPU devices)
# the contrast and the map
AE_EPOCHS = 5  # epochs of the plain autoencoder (same widths, a deterministic code)
MAP_EPOCHS = 8  # epochs of a second VAE with a 2-number code, drawn as a map
# evaluation and pictures
IW_SAMPLES = 200  # k: codes drawn per test image for the importance-weighted estimate of -log p(x)
GRID_SIZE = 15  # the map's grid of decoded codes is GRID_SIZE x GRID_SIZE
# output
TENSORBOARD = False  # also write TensorBoard logs (losses, and outputs every 2 epochs) to OUTPUT_DIR/tensorboard
OUTPUT_DIR = None  # where figures, metrics.json and the models go (None: outputs/08_variational_autoencoder)


# %%
"""
## Introduction

Chapter 01's autoencoder compresses, but it has no reason to use its code space tidily: the codes
of the training digits form scattered clumps, and a code picked at random between them decodes to
a smudge. You cannot *make* new digits with it.

A variational autoencoder (Kingma & Welling, 2014; Rezende, Mohamed & Wierstra, 2014) is a
probabilistic model of the images. A code `z` is drawn from a standard normal `p(z) = N(0, I)`,
and the decoder turns it into the probability of ink at every pixel, `p(x|z)`. To train it, the
encoder no longer gives one code for an image but a normal distribution over codes,
`q(z|x) = N(mean, exp(log_var))`. The loss is the *negative evidence lower bound* (ELBO):

    -ELBO(x) = E_q[-log p(x|z)]          reconstruction: binary cross-entropy summed over pixels
             + KL(q(z|x) || N(0, I))      the price of a code distribution that strays from the prior

and it bounds the negative log-likelihood from above: `-log p(x) <= -ELBO(x)`, in nats per image.
The reconstruction term alone is chapter 01's loss, with a random code in place of a fixed one;
the KL term pulls every image's code distribution towards the same standard normal, so the codes
fill that normal without gaps. Then any code drawn from N(0, I) decodes to a digit, and the
straight line between two codes passes through digits.

    image -> 512 -> 256 -> mean, log_var (CODE_DIM each) -> z = mean + exp(log_var / 2) * eps -> 256 -> 512 -> image
    `------------------ encoder ------------------'    eps ~ N(0, I)                     `------ decoder -----'

`z = mean + sigma * eps` (the *reparameterisation*) draws the code so that the gradient flows
through `mean` and `sigma` into the encoder: the randomness is in `eps`, which has no weights.
"""


def build_encoder(code_dim: int, hidden_units: tuple[int, ...], size: int, variational: bool) -> keras.Model:
    """Image -> code. Variational: image -> [mean, log_var] of the normal q(z|x); plain: image -> code."""
    image = keras.Input(shape=(size, size), name="image")
    h = layers.Flatten()(image)
    for units in hidden_units:
        h = layers.Dense(units, activation="relu")(h)
    if not variational:
        return keras.Model(image, layers.Dense(code_dim, name="code")(h), name="encoder")
    z_mean = layers.Dense(code_dim, name="z_mean")(h)
    z_log_var = layers.Dense(code_dim, name="z_log_var")(h)  # log of the variance: any real number
    return keras.Model(image, [z_mean, z_log_var], name="encoder")


def build_decoder(code_dim: int, hidden_units: tuple[int, ...], size: int) -> keras.Model:
    """Code -> image: the probability of ink at every pixel, in [0, 1]."""
    code = keras.Input(shape=(code_dim,), name="code")
    h = code
    for units in reversed(hidden_units):
        h = layers.Dense(units, activation="relu")(h)
    pixels = layers.Dense(size * size, activation="sigmoid")(h)
    return keras.Model(code, layers.Reshape((size, size), name="image")(pixels), name="decoder")


def reconstruction_loss(x, x_decoded):
    """-log p(x|z) in nats per image: binary cross-entropy summed over the pixels (Keras clips the
    probabilities to [1e-7, 1 - 1e-7] first)."""
    return ops.sum(ops.binary_crossentropy(x, x_decoded), axis=(1, 2))


def kl_divergence(z_mean, z_log_var):
    """KL(N(mean, exp(log_var)) || N(0, I)) in nats per image, in closed form."""
    return -0.5 * ops.sum(1 + z_log_var - ops.square(z_mean) - ops.exp(z_log_var), axis=-1)


class VAE(keras.Model):
    """The encoder and decoder trained on the negative ELBO, reconstruction and KL tracked apart."""

    def __init__(self, encoder: keras.Model, decoder: keras.Model, seed: int, **kwargs) -> None:
        super().__init__(**kwargs)
        self.encoder, self.decoder = encoder, decoder
        self.noise = keras.random.SeedGenerator(seed)
        self.trackers = [keras.metrics.Mean(name) for name in ("loss", "reconstruction", "kl")]
        self.built = True  # its weights are the encoder's and the decoder's, both built already

    @property
    def metrics(self) -> list:
        return self.trackers

    def negative_elbo(self, x, training: bool) -> tuple:
        z_mean, z_log_var = self.encoder(x, training=training)
        eps = keras.random.normal(ops.shape(z_mean), seed=self.noise)
        z = z_mean + ops.exp(0.5 * z_log_var) * eps  # the reparameterisation: one code drawn per image
        reconstruction = ops.mean(reconstruction_loss(x, self.decoder(z, training=training)))
        kl = ops.mean(kl_divergence(z_mean, z_log_var))
        return reconstruction + kl, reconstruction, kl

    def train_step(self, data):
        x, _ = data  # (input, target) pairs from the training pipeline: both the clean image
        with tf.GradientTape() as tape:
            terms = self.negative_elbo(x, training=True)
            replicas = tf.distribute.get_strategy().num_replicas_in_sync  # gradients are summed over replicas
            loss = terms[0] / replicas
        gradients = tape.gradient(loss, self.trainable_weights)
        self.optimizer.apply(gradients, self.trainable_weights)
        return self.track(terms)

    def test_step(self, data):
        x, _ = data
        return self.track(self.negative_elbo(x, training=False))

    def track(self, terms: tuple) -> dict:
        for tracker, value in zip(self.trackers, terms):
            tracker.update_state(value)
        return {tracker.name: tracker.result() for tracker in self.trackers}


def compile_for(model: keras.Model, epochs: int, n_images: int, loss=None) -> None:
    """Adam with a learning rate decayed to zero over `epochs` (cosine), XLA on one device."""
    schedule = keras.optimizers.schedules.CosineDecay(LEARNING_RATE, decay_steps=epochs * -(-n_images // BATCH_SIZE))
    model.compile(optimizer=keras.optimizers.Adam(schedule), loss=loss, jit_compile=use_xla())


def test_terms(encoder: keras.Model, decoder: keras.Model, x: np.ndarray, seed: int) -> dict[str, float]:
    """The negative ELBO on `x`, in nats per image, and its two terms: one code drawn per image,
    the KL in closed form (pytorch/examples' `vae` prints this figure)."""
    rng = np.random.default_rng(seed)
    z_mean, z_log_var = encoder.predict(x, batch_size=1000, verbose=0)
    z = z_mean + np.exp(0.5 * z_log_var) * rng.standard_normal(z_mean.shape, dtype=np.float32)
    reconstruction = float(np.mean(reconstruction_loss(x, decoder.predict(z, batch_size=1000, verbose=0))))
    kl = float(np.mean(kl_divergence(z_mean, z_log_var)))
    return {"negative_elbo": reconstruction + kl, "reconstruction": reconstruction, "kl": kl}


def importance_weighted_nll(encoder: keras.Model, decoder: keras.Model, x: np.ndarray, k: int, seed: int) -> float:
    """An estimate of -log p(x) in nats per image (Burda, Grosse & Salakhutdinov, 2016): draw k
    codes z_1..z_k from q(z|x) and average the importance weights p(x|z) p(z) / q(z|x):

        -log p(x) ~ -log (1/k) sum_j p(x|z_j) p(z_j) / q(z_j|x)

    One code (k = 1) gives an estimate of the ELBO; more codes give a tighter bound, which
    approaches -log p(x) as k grows. The sum is taken in logs (logsumexp), batch by batch."""
    log_2pi = math.log(2 * math.pi)

    @tf.function(jit_compile=use_xla())
    def log_weights(images, eps):  # images (n, size, size), eps (k, n, code) -> log w (k, n)
        z_mean, z_log_var = encoder(images)
        z = z_mean + ops.exp(0.5 * z_log_var) * eps
        decoded = decoder(ops.reshape(z, (-1, z.shape[-1])))  # (k * n, size, size)
        log_p_x_given_z = -ops.reshape(reconstruction_loss(ops.tile(images, (k, 1, 1)), decoded), (k, -1))
        log_p_z = -0.5 * ops.sum(ops.square(z) + log_2pi, axis=-1)
        log_q_z = -0.5 * ops.sum(ops.square(eps) + log_2pi + z_log_var, axis=-1)
        return log_p_x_given_z + log_p_z - log_q_z

    rng = np.random.default_rng(seed)
    batch = max(1, 20_000 // k)  # k codes for each of `batch` images decoded at once
    nll = []
    for first in range(0, len(x), batch):
        images = x[first : first + batch]
        eps = rng.standard_normal((k, len(images), encoder.output[0].shape[-1]), dtype=np.float32)
        log_w = log_weights(images, eps)
        nll.append(-(ops.logsumexp(log_w, axis=0) - math.log(k)))
    return float(np.mean(np.concatenate([np.asarray(n) for n in nll])))


def interpolate(codes_a: np.ndarray, codes_b: np.ndarray, steps: int) -> np.ndarray:
    """Codes on the straight line from each code in `codes_a` to its partner in `codes_b`:
    (pairs, steps, code)."""
    t = np.linspace(0, 1, steps, dtype=np.float32)[None, :, None]
    return (1 - t) * codes_a[:, None] + t * codes_b[:, None]


# %%
"""
## Setup

Apply the command line's overrides to the constants above (`--help` lists them), create and
check the output folder, and seed every random generator with SEED.
"""
started = time.perf_counter()
settings, out = start(globals())
if IW_SAMPLES < 1:
    raise SettingError(f"--iw_samples={IW_SAMPLES}: must be a whole number of at least 1")
if not 0 <= VALIDATION_FRACTION < 1:
    raise SettingError(f"--validation_fraction={VALIDATION_FRACTION}: must be at least 0 and less than 1")

# %%
"""
## Prepare the data

Pixel values in [0, 1], read as the probability of ink, which is what the binary cross-entropy
scores. The last tenth of the training images (at most 5,000) are held out: they give the
validation loss after every epoch and are never trained on. The labels only colour the map.
"""
data = load_data(DATA, DATASET, TRAIN_LIMIT, IMAGE_SIZE)
print(f"data: {data.describe()}")
n_validation = min(VALIDATION_LIMIT, int(len(data.x_train) * VALIDATION_FRACTION))
x_fit = data.x_train[: len(data.x_train) - n_validation]
x_validation = data.x_train[len(x_fit) :]
validation = (x_validation, x_validation) if n_validation else None
print(f"training on {len(x_fit):,} images, {n_validation:,} held out for validation")

# %%
"""
## Build the model

Two plain functional models, so that each saves and loads on its own: the encoder (image -> mean
and log-variance of q(z|x)) and the decoder (code -> image). The `VAE` model above joins them for
training: its `train_step` draws the code and computes the two terms of the loss.
"""
encoder = build_encoder(CODE_DIM, tuple(HIDDEN_UNITS), IMAGE_SIZE, variational=True)
decoder = build_decoder(CODE_DIM, tuple(HIDDEN_UNITS), IMAGE_SIZE)
vae = VAE(encoder, decoder, seed=SEED)
compile_for(vae, EPOCHS, len(x_fit))
encoder.summary(line_length=80)
decoder.summary(line_length=80)

# %%
"""
## Train

Each epoch prints the negative ELBO (`loss`) and its two terms, in nats per image, on the
training batches and on the held-out images (`val_`).
"""
history, train_seconds = train_autoencoder(
    vae,
    x_fit,
    None,
    epochs=EPOCHS,
    batch_size=BATCH_SIZE,
    seed=SEED,
    validation=validation,
    resume_dir=backup_folder(out, settings, "vae"),  # Ctrl-C, then rerun: resumes here
    tensorboard_dir=out / "tensorboard" if TENSORBOARD else None,
)

# %%
"""
## Evaluate: the negative ELBO, and an importance-weighted estimate of -log p(x)

Both on every test image, in nats per image. The ELBO is what training minimised; the
importance-weighted estimate with IW_SAMPLES codes per image is a tighter bound on the negative
log-likelihood, so it must come out lower.
"""
evaluate_started = time.perf_counter()
test = test_terms(encoder, decoder, data.x_test, SEED)
iw_nll = importance_weighted_nll(encoder, decoder, data.x_test, IW_SAMPLES, SEED)
evaluate_seconds = time.perf_counter() - evaluate_started
print(f"\nTest set ({len(data.x_test):,} images), code of {CODE_DIM} numbers, in nats per image:")
print(
    f"  negative ELBO {test['negative_elbo']:.2f} = reconstruction {test['reconstruction']:.2f} + KL {test['kl']:.2f}"
)
print(f"  importance-weighted estimate of -log p(x), k = {IW_SAMPLES}: {iw_nll:.2f}")

# %%
"""
## The contrast: a plain autoencoder of the same widths

The same encoder widths with a deterministic code, the same decoder, trained on the
reconstruction term alone (chapter 01's loss, summed over the pixels). It reconstructs better,
since nothing pulls its codes together, but it has no prior to sample from: the fairest stand-in
is a normal distribution fitted to its training codes (their mean and covariance), and we decode
codes drawn from that.
"""
ae_encoder = build_encoder(CODE_DIM, tuple(HIDDEN_UNITS), IMAGE_SIZE, variational=False)
ae_decoder = build_decoder(CODE_DIM, tuple(HIDDEN_UNITS), IMAGE_SIZE)
image = keras.Input(shape=(IMAGE_SIZE, IMAGE_SIZE))
autoencoder = keras.Model(image, ae_decoder(ae_encoder(image)), name="plain_autoencoder")
compile_for(autoencoder, AE_EPOCHS, len(x_fit), loss=reconstruction_loss)
ae_history, ae_seconds = train_autoencoder(
    autoencoder,
    x_fit,
    None,
    epochs=AE_EPOCHS,
    batch_size=BATCH_SIZE,
    seed=SEED,
    validation=validation,
    resume_dir=backup_folder(out, settings, "plain_ae"),
)
ae_test_codes = ae_encoder.predict(data.x_test, batch_size=1000, verbose=0)
ae_reconstructions = ae_decoder.predict(ae_test_codes, batch_size=1000, verbose=0)
ae_reconstruction = float(np.mean(reconstruction_loss(data.x_test, ae_reconstructions)))
vae_test_means = encoder.predict(data.x_test, batch_size=1000, verbose=0)[0]
vae_reconstructions = decoder.predict(vae_test_means, batch_size=1000, verbose=0)  # the mean code, no draw
vae_mean_reconstruction = float(np.mean(reconstruction_loss(data.x_test, vae_reconstructions)))
print("\nReconstruction of the test images, binary cross-entropy in nats per image:")
print(f"  plain autoencoder ({AE_EPOCHS} epochs): {ae_reconstruction:.2f}")
print(f"  VAE, decoding the mean code: {vae_mean_reconstruction:.2f}")

rng = np.random.default_rng(SEED)
n_samples = 100
vae_samples = np.asarray(decoder(rng.standard_normal((n_samples, CODE_DIM), dtype=np.float32)))
ae_train_codes = ae_encoder.predict(x_fit, batch_size=1000, verbose=0).astype(np.float64)
ae_code_mean = ae_train_codes.mean(axis=0)
ae_code_covariance = np.cov(ae_train_codes, rowvar=False).reshape(CODE_DIM, CODE_DIM)
ae_random_codes = rng.multivariate_normal(ae_code_mean, ae_code_covariance, n_samples).astype(np.float32)
ae_samples = np.asarray(ae_decoder(ae_random_codes))

# %%
"""
## A map: a VAE with a two-number code

With CODE_DIM = 2 the codes can be drawn directly. A second, smaller training (MAP_EPOCHS) gives
the test codes coloured by class and the grid of images the decoder makes from codes spread over
the prior: each grid point is a quantile of N(0, 1) along each axis, so equal areas of the grid
hold equal probability under the prior.
"""
map_encoder = build_encoder(2, tuple(HIDDEN_UNITS), IMAGE_SIZE, variational=True)
map_decoder = build_decoder(2, tuple(HIDDEN_UNITS), IMAGE_SIZE)
map_vae = VAE(map_encoder, map_decoder, seed=SEED)
compile_for(map_vae, MAP_EPOCHS, len(x_fit))
map_history, map_seconds = train_autoencoder(
    map_vae,
    x_fit,
    None,
    epochs=MAP_EPOCHS,
    batch_size=BATCH_SIZE,
    seed=SEED,
    validation=validation,
    resume_dir=backup_folder(out, settings, "map_vae"),
)
map_test = test_terms(map_encoder, map_decoder, data.x_test, SEED)
print(
    f"\nVAE with a 2-number code ({MAP_EPOCHS} epochs): test negative ELBO {map_test['negative_elbo']:.2f} "
    f"= reconstruction {map_test['reconstruction']:.2f} + KL {map_test['kl']:.2f}"
)
map_codes = map_encoder.predict(data.x_test, batch_size=1000, verbose=0)[0]
quantiles = norm.ppf(np.linspace(0.5 / GRID_SIZE, 1 - 0.5 / GRID_SIZE, GRID_SIZE)).astype(np.float32)
z1, z2 = np.meshgrid(quantiles, quantiles[::-1])  # z2 grows upwards, as on the map's axis
grid = np.asarray(map_decoder(np.stack([z1.ravel(), z2.ravel()], axis=1)))

# %%
"""
## Visualize and save

Samples of both models, reconstructions of the same test digits, interpolations between pairs of
test digits, the 2-D map and its grid, and the loss curves; the encoder and decoder as two
`.keras` files that `keras.models.load_model` reads back without this script.
"""
plotting.image_grids(
    out / "samples.png",
    {
        "VAE: codes drawn from N(0, I)": vae_samples.reshape(10, 10, IMAGE_SIZE, IMAGE_SIZE),
        "plain autoencoder: codes drawn from a normal fitted to its codes": ae_samples.reshape(
            10, 10, IMAGE_SIZE, IMAGE_SIZE
        ),
    },
    title=f"Decoded random codes ({CODE_DIM} numbers)",
)
plotting.image_rows(
    out / "reconstructions.png",
    {"original": data.x_test[:12], "VAE (mean code)": vae_reconstructions[:12], "plain AE": ae_reconstructions[:12]},
    n=12,
    title=f"Test images through a {CODE_DIM}-number code",
)
pairs, steps = min(6, len(data.x_test) // 2), 10
a, b = np.arange(pairs) * 2, np.arange(pairs) * 2 + 1  # test images 0 and 1, 2 and 3, ...
ends = data.x_test[a][:, None], data.x_test[b][:, None]
interpolations = {}
for label, codes, model in (("VAE", vae_test_means, decoder), ("plain autoencoder", ae_test_codes, ae_decoder)):
    line = interpolate(codes[a], codes[b], steps).reshape(-1, CODE_DIM)
    decoded = np.asarray(model(line)).reshape(pairs, steps, IMAGE_SIZE, IMAGE_SIZE)
    interpolations[label] = np.concatenate([ends[0], decoded, ends[1]], axis=1)
plotting.image_grids(
    out / "interpolations.png",
    interpolations,
    title="From one test digit (left) to another (right) along a straight line through the code space",
)
plotting.labelled_scatter(
    out / "map_codes.png",
    map_codes,
    data.y_test,
    data.class_names,
    xlabel="z1 (mean of q(z|x))",
    ylabel="z2",
    title=f"Test codes of the VAE with a 2-number code ({len(data.x_test):,} images)",
    class_label="digit" if DATASET == "mnist" and not DATA else "class",
)
plotting.image_grids(
    out / "map_grid.png",
    {"": grid.reshape(GRID_SIZE, GRID_SIZE, IMAGE_SIZE, IMAGE_SIZE)},
    title="Decoded codes at quantiles of N(0, 1) along each axis",
    axis_values=(quantiles, quantiles[::-1]),
    axis_labels=("z1", "z2"),
)
curves = {"VAE: -ELBO": history, "plain AE: reconstruction": ae_history}
for term, label in (("reconstruction", "reconstruction"), ("kl", "KL")):
    curves[f"VAE: {label}"] = {"loss": history[term], "val_loss": history.get(f"val_{term}")}
plotting.loss_curves(out / "loss.png", curves, ylabel="nats per image")

metrics = {
    "settings": settings,
    "data": data.source,
    "n_train": len(x_fit),
    "n_validation": n_validation,
    "n_test": len(data.x_test),
    "code_dim": CODE_DIM,
    "epochs": EPOCHS,
    "train_seconds": round(train_seconds, 1),
    "history": history,
    "test_negative_elbo": test["negative_elbo"],
    "test_reconstruction": test["reconstruction"],
    "test_kl": test["kl"],
    "iw_samples": IW_SAMPLES,
    "test_iw_nll": iw_nll,
    "evaluate_seconds": round(evaluate_seconds, 1),
    "test_reconstruction_mean_code": vae_mean_reconstruction,
    "plain_ae": {
        "epochs": AE_EPOCHS,
        "train_seconds": round(ae_seconds, 1),
        "test_reconstruction": ae_reconstruction,
        "history": ae_history,
    },
    "map": {
        "epochs": MAP_EPOCHS,
        "train_seconds": round(map_seconds, 1),
        "test_negative_elbo": map_test["negative_elbo"],
        "test_reconstruction": map_test["reconstruction"],
        "test_kl": map_test["kl"],
    },
}
save_model(encoder, out / "encoder.keras")
save_model(decoder, out / "decoder.keras")
metrics["total_seconds"] = round(time.perf_counter() - started, 1)
save_json(out / "metrics.json", metrics)
finish(
    out, f"test -ELBO {test['negative_elbo']:.2f} nats, importance-weighted {iw_nll:.2f} (k = {IW_SAMPLES})", started
)
