"""
Title: Variational autoencoders: from a code that compresses to a code you can sample
Description: Make the encoder output a distribution and pay for straying from a standard normal,
    and every code decodes to a digit; measure the model as a density (ELBO and an
    importance-weighted estimate of the likelihood, on binarized digits) and set it beside a plain autoencoder.
Run: python 08_variational_autoencoder.py      (add --epochs=5 --train_limit=10000 --iw_samples=100 for a quick look)
"""

# %%
import math
import time

from common import plotting
from common.data import holdout_split, load_data
from common.devices import use_xla
from common.errors import SettingError
from common.outputs import save_json, save_model
from common.script import finish, start
from common.training import backup_folder, train_autoencoder

import keras
import numpy as np
import tensorflow as tf
from keras import layers, ops
from scipy.special import entr, logsumexp
from scipy.stats import norm

# --- hyperparameters: edit here, or override on the command line (--epochs=5) ---
# data
DATASET = "mnist"  # "mnist" or "fashion_mnist" (ignored when DATA is set)
DATA = None  # an .npz, a folder of MNIST IDX files, or a folder of your own images (see the README)
IMAGE_SIZE = 28  # images are made grey squares of IMAGE_SIZE x IMAGE_SIZE pixels
TRAIN_LIMIT = None  # use only the first N training images (None: all 60,000)
VALIDATION_SIZE = None  # last N training images, held out for the validation loss (None: a tenth, at most 5,000)
BINARIZE = True  # pixels 0 or 1, ink with probability = grey level (training: a new draw every batch); False: grey
# model
CODE_DIM = 32  # size of the code z, the latent variable
HIDDEN_UNITS = (512, 256)  # encoder layer widths; the decoder mirrors them
# training
EPOCHS = 30  # passes over the training images (the VAE with CODE_DIM numbers)
BATCH_SIZE = 128  # images per gradient step
LEARNING_RATE = 1e-3  # Adam's step size, decayed to zero over training (cosine)
SEED = 0  # seeds NumPy, Python and TensorFlow, and the binarization
STRATEGY = None  # None: one device; "mirrored": split every batch over all local GPUs (or 2 CPU devices)
# the contrast and the map
AE_EPOCHS = 3  # epochs of the plain autoencoder (same widths, a deterministic code)
MAP_EPOCHS = 5  # epochs of a second VAE with a 2-number code, drawn as a map
# evaluation and pictures
IW_SAMPLES = 1000  # k: codes drawn per test image for the importance-weighted estimate of -log p(x)
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

    -ELBO(x) = E_q[-log p(x|z)]          reconstruction: -log-likelihood of the pixels, summed over them
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

**A likelihood needs binary pixels.** The decoder gives pixel `i` ink with probability `p_i`, so
`log p(x|z) = sum_i [x_i log p_i + (1 - x_i) log(1 - p_i)]`. For pixels that are 0 or 1 this is the
log-probability of the image (a Bernoulli per pixel), and a perfect model scores 0. MNIST's pixels
are grey, and for grey `x_i` the same sum is minus the *binary cross-entropy* (BCE), the
log-probability of nothing: even a decoder that returns `p = x` exactly still pays the entropy of
the grey pixels, `sum_i H(x_i) = -sum_i [x_i log x_i + (1 - x_i) log(1 - x_i)]` (`bce_floor`), about
45.5 nats per MNIST test image. A BCE figure is that floor plus the part the model can change; it
is no likelihood, and cannot be set beside the published MNIST likelihoods, which are for binarized
digits. So by default (BINARIZE) every pixel is made 1 with probability equal to its grey level,
else 0 (`binarize`).
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
    """Code -> image: the probability of ink at every pixel, in [0, 1], the sigmoid of a layer of
    logits (log-odds) that the loss reads directly."""
    code = keras.Input(shape=(code_dim,), name="code")
    h = code
    for units in reversed(hidden_units):
        h = layers.Dense(units, activation="relu")(h)
    logits = layers.Reshape((size, size), name="logits")(layers.Dense(size * size)(h))
    return keras.Model(code, layers.Activation("sigmoid", name="image")(logits), name="decoder")


def logits_of(decoder: keras.Model) -> keras.Model:
    """The decoder up to its logits, with the same weights: code -> log(p / (1 - p)) per pixel."""
    return keras.Model(decoder.input, decoder.get_layer("logits").output)


def reconstruction_loss(x, logits):
    """-log p(x|z) in nats per image, p = sigmoid(logits): -sum_i [x_i log p_i + (1 - x_i) log(1 - p_i)],
    written as softplus(logit) - x * logit so that no probability is rounded to 0 or 1. For binary x
    the Bernoulli negative log-likelihood; for grey x the binary cross-entropy."""
    return ops.sum(ops.softplus(logits) - x * logits, axis=(-2, -1))


def kl_divergence(z_mean, z_log_var):
    """KL(N(mean, exp(log_var)) || N(0, I)) in nats per image, in closed form."""
    return -0.5 * ops.sum(1 + z_log_var - ops.square(z_mean) - ops.exp(z_log_var), axis=-1)


def binarize(images, seed):
    """Each pixel 1 with probability equal to its grey level, else 0. `seed` is a pair of integers:
    the same pair gives the same draw (a stateless generator), another pair a fresh one."""
    return tf.cast(tf.random.stateless_uniform(tf.shape(images), seed) < images, tf.float32)


def bce_floor(x: np.ndarray) -> np.ndarray:
    """The least binary cross-entropy an image can be scored, by a decoder returning p = x: the entropy
    sum_i H(x_i) = -sum_i [x_i log x_i + (1 - x_i) log(1 - x_i)] in nats per image (0 for binary pixels)."""
    x = np.asarray(x, dtype=np.float64)
    return np.sum(entr(x) + entr(1 - x), axis=(1, 2))


class VAE(keras.Model):
    """The encoder and decoder trained on the negative ELBO, reconstruction and KL tracked apart."""

    def __init__(self, encoder: keras.Model, decoder: keras.Model, seed: int, **kwargs) -> None:
        super().__init__(**kwargs)
        self.encoder, self.logits = encoder, logits_of(decoder)
        self.noise = keras.random.SeedGenerator(seed)
        self.trackers = [keras.metrics.Mean(name) for name in ("loss", "reconstruction", "kl")]
        self.built = True  # its weights are the encoder's and the decoder's, both built already

    @property
    def metrics(self) -> list:
        return self.trackers

    def loss_terms(self, x, training: bool) -> tuple:
        z_mean, z_log_var = self.encoder(x, training=training)
        eps = keras.random.normal(ops.shape(z_mean), seed=self.noise)
        z = z_mean + ops.exp(0.5 * z_log_var) * eps  # the reparameterisation: one code drawn per image
        reconstruction = ops.mean(reconstruction_loss(x, self.logits(z, training=training)))
        kl = ops.mean(kl_divergence(z_mean, z_log_var))
        return reconstruction + kl, reconstruction, kl

    def train_step(self, data):
        x, _ = data  # (input, target) pairs from the training pipeline: the input, binarized or grey
        with tf.GradientTape() as tape:
            terms = self.loss_terms(x, training=True)
            replicas = tf.distribute.get_strategy().num_replicas_in_sync  # gradients are summed over replicas
            loss = terms[0] / replicas
        gradients = tape.gradient(loss, self.trainable_weights)
        self.optimizer.apply(gradients, self.trainable_weights)
        return self.track(terms)

    def test_step(self, data):
        x, _ = data
        return self.track(self.loss_terms(x, training=False))

    def track(self, terms: tuple) -> dict:
        for tracker, value in zip(self.trackers, terms):
            tracker.update_state(value)
        return {tracker.name: tracker.result() for tracker in self.trackers}


class PlainAutoencoder(VAE):
    """The same training with a deterministic code and no KL term: the reconstruction term alone."""

    def loss_terms(self, x, training: bool) -> tuple:
        reconstruction = ops.mean(reconstruction_loss(x, self.logits(self.encoder(x, training=training))))
        return reconstruction, reconstruction, ops.zeros_like(reconstruction)


def test_terms(encoder: keras.Model, decoder: keras.Model, x: np.ndarray, seed: int) -> dict[str, float]:
    """The negative ELBO on `x`, in nats per image, and its two terms: one code drawn per image,
    the KL in closed form (pytorch/examples' `vae` prints this figure)."""
    rng = np.random.default_rng(seed)
    z_mean, z_log_var = encoder.predict(x, batch_size=1000, verbose=0)
    z = z_mean + np.exp(0.5 * z_log_var) * rng.standard_normal(z_mean.shape, dtype=np.float32)
    reconstruction = float(np.mean(reconstruction_loss(x, logits_of(decoder)(z))))
    kl = float(np.mean(kl_divergence(z_mean, z_log_var)))
    return {"negative_elbo": reconstruction + kl, "reconstruction": reconstruction, "kl": kl}


def importance_weighted_nll(encoder: keras.Model, decoder: keras.Model, x: np.ndarray, k: int, seed: int) -> float:
    """An estimate of -log p(x) in nats per image (Burda, Grosse & Salakhutdinov, 2016): draw k
    codes z_1..z_k from q(z|x) and average the importance weights p(x|z) p(z) / q(z|x):

        -log p(x) ~ -log (1/k) sum_j p(x|z_j) p(z_j) / q(z_j|x)

    One code (k = 1) gives an estimate of the ELBO; more codes give a tighter bound, which
    approaches -log p(x) as k grows. The k codes of a few images are decoded in one batch; the
    weights, about e^-90, are summed as logs, in float64 (logsumexp)."""
    logits, log_2pi = logits_of(decoder), math.log(2 * math.pi)

    @tf.function(jit_compile=use_xla())
    def log_weights(images, eps):  # images (n, size, size), eps (k, n, code) -> log w (k, n)
        z_mean, z_log_var = encoder(images)
        z = z_mean + ops.exp(0.5 * z_log_var) * eps
        decoded = ops.reshape(logits(ops.reshape(z, (-1, z.shape[-1]))), (k, *images.shape))
        log_p_z = -0.5 * ops.sum(ops.square(z) + log_2pi, axis=-1)
        log_q_z = -0.5 * ops.sum(ops.square(eps) + log_2pi + z_log_var, axis=-1)
        return -reconstruction_loss(images, decoded) + log_p_z - log_q_z

    rng = np.random.default_rng(seed)
    batch = max(1, 2_000 // k)  # k codes for each of `batch` images decoded at once
    nll = []
    for first in range(0, len(x), batch):
        images = x[first : first + batch]
        eps = rng.standard_normal((k, len(images), encoder.output[0].shape[-1]), dtype=np.float32)
        log_w = np.asarray(log_weights(images, eps), dtype=np.float64)
        nll.append(math.log(k) - logsumexp(log_w, axis=0))
    return float(np.mean(np.concatenate(nll)))


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

# %%
"""
## Prepare the data

Pixel values in [0, 1], the grey level. With BINARIZE the training images are binarized afresh for
every batch (*dynamic binarization*, as in Burda et al., 2016), batch number i with the seed
(SEED, i), handed to the training as chapters 02-04 hand it their noise: the model never sees the
same binary digit twice. The validation and test images are binarized once, with the seeds
(SEED, -1) and (SEED, -2), so that every run scores the same binary images. The last VALIDATION_SIZE
training images (by default a tenth, at most 5,000) are held out: they give the validation loss
after every epoch and are never trained on. The labels only colour the map.
"""
data = load_data(DATA, DATASET, TRAIN_LIMIT, IMAGE_SIZE)
print(f"data: {data.describe()}")
x_fit, x_validation = holdout_split(data.x_train, VALIDATION_SIZE, "VALIDATION_SIZE", fraction=1 / 10, cap=5000)
x_test, binarization, pixels = data.x_test, None, "grey"
if BINARIZE:
    x_validation, x_test = np.asarray(binarize(x_validation, (SEED, -1))), np.asarray(binarize(x_test, (SEED, -2)))
    binarization, pixels = binarize, "binarized"  # binarize(batch, (SEED, i)) for training batch number i
print(f"training on {len(x_fit):,} images, {len(x_validation):,} held out for validation; {pixels} pixels")


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
encoder.summary(line_length=80)
decoder.summary(line_length=80)

# %%
"""
## Train

Each epoch prints the negative ELBO (`loss`) and its two terms, in nats per image, on the
training batches and on the held-out images (`val_`).
"""


def fit(model: keras.Model, epochs: int, stage: str, **options) -> tuple[dict, float]:
    """Adam with a learning rate decayed to zero over `epochs` (cosine), XLA on one device; with
    BINARIZE a fresh binarization of every batch; the validation loss after every epoch."""
    schedule = keras.optimizers.schedules.CosineDecay(LEARNING_RATE, epochs * -(-len(x_fit) // BATCH_SIZE))
    model.compile(optimizer=keras.optimizers.Adam(schedule), jit_compile=use_xla())
    return train_autoencoder(
        model, x_fit, binarization, epochs=epochs, batch_size=BATCH_SIZE, seed=SEED,
        validation=(x_validation, x_validation), resume_dir=backup_folder(out, settings, stage), **options,
    )  # fmt: skip


history, train_seconds = fit(vae, EPOCHS, "vae", tensorboard_dir=out / "tensorboard" if TENSORBOARD else None)

# %%
"""
## Evaluate: the negative ELBO, and an importance-weighted estimate of -log p(x)

Both on every test image, in nats per image. The ELBO is what training minimised; the
importance-weighted estimate with IW_SAMPLES codes per image is a tighter bound on the negative
log-likelihood, so it must come out lower. On binarized digits these are the figures the literature
gives. Burda, Grosse & Salakhutdinov (ICLR 2016) report, for one stochastic layer on dynamically
binarized MNIST, 86.76 nats for a VAE and 84.78 for an IWAE (the same model trained on the k = 50
bound), both estimated with k = 5,000; their models (two layers of 200 tanh units, a code of 50
numbers) trained for 3,280 epochs, this one for tens. On grey pixels the two figures are binary
cross-entropies: the floor is printed beside them, and only the part above it is the model's.
"""
evaluate_started = time.perf_counter()
test = test_terms(encoder, decoder, x_test, SEED)
iw_nll = importance_weighted_nll(encoder, decoder, x_test, IW_SAMPLES, SEED)
evaluate_seconds = time.perf_counter() - evaluate_started
floor = float(np.mean(bce_floor(data.x_test)))  # of the grey test images
burda = {"vae": 86.76, "iwae_k50": 84.78}  # Burda et al. (2016), table 1, one stochastic layer
print(f"\nTest set ({len(x_test):,} images, {pixels}), code of {CODE_DIM} numbers, in nats per image:")
print(
    f"  negative ELBO {test['negative_elbo']:.2f} = reconstruction {test['reconstruction']:.2f} + KL {test['kl']:.2f}"
)
print(f"  importance-weighted estimate of -log p(x), k = {IW_SAMPLES:,}: {iw_nll:.2f}")
print(f"  binary cross-entropy floor of the grey test images: {floor:.2f}{' (0 on binary ones)' if BINARIZE else ''}")
if BINARIZE:
    print(f"  Burda et al. (2016), 3,280 epochs, k = 5,000: VAE {burda['vae']}, IWAE (k = 50) {burda['iwae_k50']}")
else:
    above = {"negative ELBO": test["negative_elbo"] - floor, "importance-weighted": iw_nll - floor}
    print("  above the floor (not likelihoods): " + ", ".join(f"{name} {value:.2f}" for name, value in above.items()))

# %%
"""
## The contrast: a plain autoencoder of the same widths

The same encoder widths with a deterministic code, the same decoder, trained on the
reconstruction term alone (chapter 01's loss, summed over the pixels), for AE_EPOCHS epochs: a
contrast for the pictures more than for the figures. Nothing pulls its codes together, but it has
no prior to sample from: the fairest stand-in is a normal distribution fitted to its training codes
(their mean and covariance), and we decode codes drawn from that.
"""
ae_encoder = build_encoder(CODE_DIM, tuple(HIDDEN_UNITS), IMAGE_SIZE, variational=False)
ae_decoder = build_decoder(CODE_DIM, tuple(HIDDEN_UNITS), IMAGE_SIZE)
ae_history, ae_seconds = fit(PlainAutoencoder(ae_encoder, ae_decoder, seed=SEED), AE_EPOCHS, "plain_ae")
ae_test_codes = ae_encoder.predict(x_test, batch_size=1000, verbose=0)
ae_reconstruction = float(np.mean(reconstruction_loss(x_test, logits_of(ae_decoder)(ae_test_codes))))
vae_test_means = encoder.predict(x_test, batch_size=1000, verbose=0)[0]  # the mean code, no draw
vae_mean_reconstruction = float(np.mean(reconstruction_loss(x_test, logits_of(decoder)(vae_test_means))))
print(f"\nReconstruction of the test images, -log p(x|code) in nats per image ({pixels} pixels):")
print(f"  plain autoencoder ({AE_EPOCHS} epochs): {ae_reconstruction:.2f}")
print(f"  VAE, decoding the mean code: {vae_mean_reconstruction:.2f}")

rng = np.random.default_rng(SEED)
vae_samples = np.asarray(decoder(rng.standard_normal((100, CODE_DIM), dtype=np.float32)))
ae_train_codes = ae_encoder.predict(x_fit, batch_size=1000, verbose=0).astype(np.float64)
ae_code_covariance = np.cov(ae_train_codes, rowvar=False).reshape(CODE_DIM, CODE_DIM)
ae_random_codes = rng.multivariate_normal(ae_train_codes.mean(axis=0), ae_code_covariance, 100)
ae_samples = np.asarray(ae_decoder(ae_random_codes.astype(np.float32)))

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
map_history, map_seconds = fit(VAE(map_encoder, map_decoder, seed=SEED), MAP_EPOCHS, "map_vae")
map_test = test_terms(map_encoder, map_decoder, x_test, SEED)
print(
    f"\nVAE with a 2-number code ({MAP_EPOCHS} epochs): test negative ELBO {map_test['negative_elbo']:.2f} "
    f"= reconstruction {map_test['reconstruction']:.2f} + KL {map_test['kl']:.2f}"
)
map_codes = map_encoder.predict(x_test, batch_size=1000, verbose=0)[0]
quantiles = norm.ppf(np.linspace(0.5 / GRID_SIZE, 1 - 0.5 / GRID_SIZE, GRID_SIZE)).astype(np.float32)
z1, z2 = np.meshgrid(quantiles, quantiles[::-1])  # z2 grows upwards, as on the map's axis
grid = np.asarray(map_decoder(np.stack([z1.ravel(), z2.ravel()], axis=1)))

# %%
"""
## Visualize and save

Samples of both models, reconstructions of the same test digits, interpolations between pairs of
test digits, the 2-D map and its grid, and the loss curves; the encoder and decoder as two
`.keras` files that `keras.models.load_model` reads back without this script. A decoded image is
the decoder's probability of ink at every pixel, drawn in grey: on binarized digits that is the
model's picture of a digit, not a binary image drawn from it (which would look speckled). The
originals beside them are the test images as scored, binarized or grey.
"""
side = (IMAGE_SIZE, IMAGE_SIZE)
plotting.image_grids(
    out / "samples.png",
    {
        "VAE: codes drawn from N(0, I)": vae_samples.reshape(10, 10, *side),
        "plain autoencoder: codes drawn from a normal fitted to its codes": ae_samples.reshape(10, 10, *side),
    },
    title=f"Decoded random codes ({CODE_DIM} numbers): the probability of ink at every pixel",
)
reconstructions = {"VAE (mean code)": decoder(vae_test_means[:12]), "plain AE": ae_decoder(ae_test_codes[:12])}
plotting.image_rows(
    out / "reconstructions.png",
    {f"original ({pixels})": x_test[:12], **reconstructions},
    n=12,
    title=f"Test images through a {CODE_DIM}-number code (decoded: the probability of ink)",
)
pairs, steps = min(6, len(x_test) // 2), 10
a, b = np.arange(pairs) * 2, np.arange(pairs) * 2 + 1  # test images 0 and 1, 2 and 3, ...
ends = x_test[a][:, None], x_test[b][:, None]
interpolations = {}
for label, codes, model in (("VAE", vae_test_means, decoder), ("plain autoencoder", ae_test_codes, ae_decoder)):
    line = interpolate(codes[a], codes[b], steps).reshape(-1, CODE_DIM)
    decoded = np.asarray(model(line)).reshape(pairs, steps, *side)
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
    title=f"Test codes of the VAE with a 2-number code ({len(x_test):,} images)",
    class_label="digit" if DATASET == "mnist" and not DATA else "class",
)
plotting.image_grids(
    out / "map_grid.png",
    {"": grid.reshape(GRID_SIZE, GRID_SIZE, *side)},
    title="Decoded codes at quantiles of N(0, 1) along each axis",
    axis_values=(quantiles, quantiles[::-1]),
    axis_labels=("z1", "z2"),
)
curves = {"VAE: -ELBO": history, "plain AE: reconstruction": ae_history}
for term, label in (("reconstruction", "reconstruction"), ("kl", "KL")):
    curves[f"VAE: {label}"] = {"loss": history[term], "val_loss": history.get(f"val_{term}")}
plotting.loss_curves(out / "loss.png", curves, ylabel="nats per image")

test_figures = {"test_neg_elbo_nats": test["negative_elbo"], "test_reconstruction_nats": test["reconstruction"]}
test_figures |= {"test_kl_nats": test["kl"], "iw_samples": IW_SAMPLES, "test_iw_nll_nats": iw_nll}
if BINARIZE:
    test_figures["burda_2016_nats"] = burda
else:
    test_figures["above_floor_nats"] = {"neg_elbo": test["negative_elbo"] - floor, "iw_nll": iw_nll - floor}
metrics = {
    "settings": settings,
    "data": data.source,
    "binarized": BINARIZE,
    "n_train": len(x_fit),
    "n_validation": len(x_validation),
    "n_test": len(x_test),
    "code_dim": CODE_DIM,
    "epochs": EPOCHS,
    "train_seconds": round(train_seconds, 1),
    "history": history,
    **test_figures,
    "bce_floor_nats": floor,
    "evaluate_seconds": round(evaluate_seconds, 1),
    "test_reconstruction_mean_code_nats": vae_mean_reconstruction,
    "plain_ae": {"epochs": AE_EPOCHS, "train_seconds": round(ae_seconds, 1), "history": ae_history},
    "map": {"epochs": MAP_EPOCHS, "train_seconds": round(map_seconds, 1), "history": map_history},
}
metrics["plain_ae"]["test_reconstruction_nats"] = ae_reconstruction
metrics["map"] |= {f"test_{key}_nats": value for key, value in map_test.items()}
save_model(encoder, out / "encoder.keras")
save_model(decoder, out / "decoder.keras")
metrics["total_seconds"] = round(time.perf_counter() - started, 1)
save_json(out / "metrics.json", metrics)
finish(
    out, f"test -ELBO {test['negative_elbo']:.2f} nats, importance-weighted {iw_nll:.2f} (k = {IW_SAMPLES})", started
)
