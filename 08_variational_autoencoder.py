r"""
Title: Variational autoencoders: from a code that compresses to a code you can sample
Description: Make the encoder output a distribution and pay for straying from a standard normal,
    and every code decodes to a digit; measure the model as a density (ELBO and an
    importance-weighted estimate of the likelihood, on binarized digits) and set it beside a plain
    autoencoder.
Run: python 08_variational_autoencoder.py                                         (the full run)
     python 08_variational_autoencoder.py --train_limit=5000 --batch_size=32 \
         --map_epochs=2 --plain_epochs=1 --importance_samples=100                 (a quick look)
"""

# %%
import math
import time

from common import plotting
from common.data import TEST_SEED, holdout_split, load_data
from common.devices import describe, jit_compile, random_normal, random_uniform
from common.outputs import save_json, save_model
from common.script import finish, start
from common.training import backup_folder, train_autoencoder

import keras
import numpy as np
from keras import layers, ops
from scipy.special import entr, logsumexp
from scipy.stats import norm

# --- hyperparameters: edit here, or override on the command line (--epochs=5) ---
# data
DATASET = "mnist"  # "mnist" or "fashion_mnist" (ignored when DATA is set)
DATA = None  # an .npz, a folder of MNIST IDX files, or a folder of your own images (see the README)
IMAGE_SIZE = 28  # images are made grey squares of IMAGE_SIZE x IMAGE_SIZE pixels
TRAIN_LIMIT = None  # use only the first N training images (None: all 60,000)
VALIDATION_SIZE = None  # the last N training images, held out: never trained on (None: a twelfth,
#                         at most 5,000)
BINARIZE = True  # pixels 0 or 1, ink with probability = grey level (training: a new draw every
#                  batch); False: grey
# model
CODE_DIM = 32  # size of the code z
HIDDEN_UNITS = (512, 256)  # encoder layer widths; the decoder mirrors them
# training
EPOCHS = 30  # passes over the training images (the VAE with CODE_DIM numbers)
BATCH_SIZE = 128  # images per gradient step
LEARNING_RATE = 1e-3  # Adam's step size, decayed to zero over training (cosine)
SEED = 0  # seeds every random draw: NumPy's, Python's and the backend's, the binarization too
STRATEGY = None  # None: one device; "mirrored": split every batch over all local devices
# the contrast and the map
PLAIN_EPOCHS = 3  # epochs of the plain autoencoder (same widths, a deterministic code)
MAP_EPOCHS = 5  # epochs of a second VAE with a 2-number code, drawn as a map
# evaluation and pictures
IMPORTANCE_SAMPLES = 1000  # k: codes drawn per test image for the importance-weighted estimate of
#                            -log p(x)
GRID_SIZE = 15  # the map's grid of decoded codes is GRID_SIZE x GRID_SIZE
# output
TENSORBOARD = False  # also write TensorBoard logs (losses, and outputs every 2 epochs) to
#                      OUTPUT_DIR/tensorboard
OUTPUT_DIR = None  # where figures, metrics.json and the models go (None:
#                    outputs/08_variational_autoencoder)

PUBLISHED = {  # Burda, Grosse & Salakhutdinov (2016), Table 1: -log p(x) on binarized MNIST, k =
    #                5,000
    "vae": 86.76,  # a VAE with one stochastic layer
    "iwae_k50": 84.78,  # the same model trained on the k = 50 bound (an IWAE)
}


# %%
"""
## Introduction

Chapter 01's autoencoder compresses, but it has no reason to use its code space tidily: the codes
of the training digits form scattered clumps, and a code picked at random between them decodes to
a smudge (the plain autoencoder of this chapter shows it). You cannot *make* new digits with it.

A variational autoencoder (Kingma & Welling, 2014; Rezende, Mohamed & Wierstra, 2014) is a
probabilistic model of the images. A code `z` is drawn from a standard normal `p(z) = N(0, I)`,
and the decoder turns it into the probability of ink at every pixel, `p(x|z)`. To train it, the
encoder no longer gives one code for an image but a normal distribution over codes,
`q(z|x) = N(mean, exp(log_var))`. The loss is the *negative evidence lower bound* (ELBO):

    -ELBO(x) = E_q[-log p(x|z)]          reconstruction: -log-likelihood of the pixels, summed over
    them
             + KL(q(z|x) || N(0, I))      the price of a code distribution that strays from the
             prior

and it bounds the negative log-likelihood from above: `-log p(x) <= -ELBO(x)`, in nats per image
(nats: the unit of a log computed with the natural logarithm; bits, with log base 2).
The reconstruction term alone is chapter 01's loss, with a random code in place of a fixed one;
the KL term pulls every image's code distribution towards the same standard normal, so the codes
fill that normal without gaps. Then any code drawn from N(0, I) decodes to a digit, and the
straight line between two codes passes through digits.

    image -> 512 -> 256 -> mean, log_var (CODE_DIM each) -> z = mean + exp(log_var / 2) * eps -> 256
    -> 512 -> image
    `------------------ encoder ------------------'    eps ~ N(0, I)                     `------
    decoder -----'

The chapter then measures the model as a density, beside the published figures; sets a plain
autoencoder of the same widths beside it; and draws a VAE with a 2-number code as a map.
"""


def build_encoder(
    code_dim: int, hidden_units: tuple[int, ...], size: int, variational: bool
) -> keras.Model:
    """Image -> code. Variational: image -> [mean, log_var] of the normal q(z|x); plain: image ->
    code."""
    image = keras.Input(shape=(size, size), name="image")
    h = layers.Flatten()(image)
    for units in hidden_units:
        h = layers.Dense(units, activation="relu")(h)
    if not variational:
        code = layers.Dense(code_dim, name="code")(h)
        return keras.Model(image, code, name="encoder")
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
    h = layers.Dense(size * size)(h)
    logits = layers.Reshape((size, size), name="logits")(h)
    image = layers.Activation("sigmoid", name="image")(logits)
    return keras.Model(code, image, name="decoder")


def logits_of(decoder: keras.Model) -> keras.Model:
    """The decoder up to its logits, with the same weights: code -> log(p / (1 - p)) per pixel."""
    return keras.Model(decoder.input, decoder.get_layer("logits").output)


def reconstruction_loss(x, logits):
    """-log p(x|z) in nats per image, p = sigmoid(logits): -sum_i [x_i log p_i + (1 - x_i) log(1 -
    p_i)],
    written as softplus(logit) - x * logit so that no probability is rounded to 0 or 1. For binary x
    the Bernoulli negative log-likelihood; for grey x the binary cross-entropy."""
    return ops.sum(ops.softplus(logits) - x * logits, axis=(-2, -1))


def kl_divergence(z_mean, z_log_var):
    """KL(N(mean, exp(log_var)) || N(0, I)) in nats per image, in closed form."""
    return -0.5 * ops.sum(1 + z_log_var - ops.square(z_mean) - ops.exp(z_log_var), axis=-1)


class Sampling(layers.Layer):
    """One code drawn from q(z|x) for each image, z = mean + exp(log_var / 2) * eps with eps ~
    N(0, I): the *reparameterisation*, which draws the code so that the gradient flows through
    `mean` and `log_var` into the encoder; the randomness is in `eps`, which has no weights."""

    def __init__(self, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, inputs):
        z_mean, z_log_var = inputs
        # keras.random.normal, fast in XLA
        eps = random_normal(ops.shape(z_mean), self.seed_generator, z_mean.dtype)
        return z_mean + ops.exp(0.5 * z_log_var) * eps


class Binarize(layers.Layer):
    """While the model trains, each pixel becomes 1 with probability equal to its grey level, else
    0, a fresh draw for every batch (*dynamic binarization*); otherwise the input passes through."""

    def __init__(self, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, x, training=False):
        if not training:
            return x
        # keras.random.uniform, fast in XLA
        u = random_uniform(ops.shape(x), self.seed_generator, x.dtype)
        return ops.cast(u < x, x.dtype)


def binarize(images: np.ndarray, seed: int) -> np.ndarray:
    """A fixed set of images binarized once: each pixel 1 with probability equal to its grey
    level."""
    u = np.random.default_rng(seed).random(images.shape)
    return (u < images).astype(np.float32)


def bce_floor(x: np.ndarray) -> np.ndarray:
    """The least binary cross-entropy an image can be scored, by a decoder returning p = x: the
    entropy
    sum_i H(x_i) = -sum_i [x_i log x_i + (1 - x_i) log(1 - x_i)] in nats per image (0 for binary pixels)."""
    x = np.asarray(x, dtype=np.float64)
    return np.sum(entr(x) + entr(1 - x), axis=(1, 2))


def with_loss_terms(
    encoder: keras.Model, decoder: keras.Model, binarized: bool, seed: int
) -> keras.Model:
    """The model that trains: image in, the two terms of the negative ELBO out, in nats per image
    (`reconstruction` and `kl`), with the image binarized afresh while it trains when `binarized`.
    A plain encoder (one code, no distribution) gives the plain autoencoder: its KL term is 0."""
    image = keras.Input(shape=encoder.input_shape[1:], name="image")
    x = Binarize(seed)(image) if binarized else image
    if isinstance(encoder.output, list):
        z_mean, z_log_var = encoder(x)
        z = Sampling(seed)([z_mean, z_log_var])
        kl = kl_divergence(z_mean, z_log_var)
    else:
        z = encoder(x)
        kl = ops.zeros_like(z[:, 0])
    reconstruction = reconstruction_loss(x, logits_of(decoder)(z))
    return keras.Model(image, {"reconstruction": reconstruction, "kl": kl}, name="elbo")


def term_is_the_loss(placeholder, term):
    """The loss of an output that is a loss term already: its value, in nats per image (Keras pairs
    every output with a target; here the target is a placeholder, and ignored)."""
    return term


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
## Prepare the data: binarized digits

Pixel values in [0, 1], the grey level. The last VALIDATION_SIZE training images are held out:
they give the validation loss after every epoch and are never trained on. The labels only colour
the map.

**A likelihood needs binary pixels.** The decoder gives pixel `i` ink with probability `p_i`, so
`log p(x|z) = sum_i [x_i log p_i + (1 - x_i) log(1 - p_i)]`. For pixels that are 0 or 1 this is the
log-probability of the image (a Bernoulli per pixel), and a perfect model scores 0. MNIST's pixels
are grey, and for grey `x_i` the same sum is minus the *binary cross-entropy* (BCE), the
log-probability of nothing: even a decoder that returns `p = x` exactly still pays the entropy of
the grey pixels (`bce_floor`), about 45.5 nats per MNIST test image. A BCE figure is that floor
plus the part the model can change; it is no likelihood, and cannot be set beside the published
MNIST likelihoods, which are for binarized digits. So by default (BINARIZE) every pixel is made 1
with probability equal to its grey level, else 0: the training images afresh for every batch
(*dynamic binarization*, as in Burda et al., 2016: the model never sees the same binary digit
twice), the validation and test images once, with the fixed seeds TEST_SEED + 1 and TEST_SEED, so
that every run scores the same binary images.
"""
data = load_data(DATA, DATASET, TRAIN_LIMIT, IMAGE_SIZE)
print(f"data: {data.describe()}")
x_fit, x_val = holdout_split(data.x_train, VALIDATION_SIZE, "VALIDATION_SIZE")
x_test = data.x_test
pixels = "grey"
if BINARIZE:
    x_val = binarize(x_val, TEST_SEED + 1)
    x_test = binarize(x_test, TEST_SEED)
    pixels = "binarized"
print(f"training on {len(x_fit):,} images, {len(x_val):,} held out for validation; {pixels} pixels")


# %%
"""
## Build the model

Two plain functional models, so that each saves and loads on its own: the encoder (image -> mean
and log-variance of q(z|x)) and the decoder (code -> image). `with_loss_terms` joins them for
training: it binarizes the image, draws one code with `Sampling` and computes the two terms of the
loss, which are its outputs.
"""
encoder = build_encoder(CODE_DIM, tuple(HIDDEN_UNITS), IMAGE_SIZE, variational=True)
decoder = build_decoder(CODE_DIM, tuple(HIDDEN_UNITS), IMAGE_SIZE)
vae = with_loss_terms(encoder, decoder, BINARIZE, SEED)
encoder.summary(line_length=80)
decoder.summary(line_length=80)

# %%
"""
## Train

The loss is the sum of the model's two outputs, averaged over the batch: the negative ELBO. Each
epoch prints it (`loss`) and its two terms, in nats per image, on the training batches and on the
held-out images (`val_`).
"""


def fit(model: keras.Model, epochs: int, stage: str, tensorboard_dir=None) -> tuple[dict, float]:
    """Adam with a learning rate decayed to zero over `epochs` (cosine); the validation loss after
    every epoch; backed up after every epoch, to resume from."""
    schedule = keras.optimizers.schedules.CosineDecay(
        LEARNING_RATE, epochs * math.ceil(len(x_fit) / BATCH_SIZE)
    )
    optimizer = keras.optimizers.Adam(schedule)
    losses = {"reconstruction": term_is_the_loss, "kl": term_is_the_loss}
    # jit_compile: XLA compiles each training step, random draws and all, into one program
    # (common/devices.py)
    model.compile(optimizer=optimizer, loss=losses, jit_compile=jit_compile())
    no_target = {"reconstruction": np.zeros(len(x_fit)), "kl": np.zeros(len(x_fit))}
    validation_no_target = {"reconstruction": np.zeros(len(x_val)), "kl": np.zeros(len(x_val))}
    return train_autoencoder(
        model,
        x_fit,
        no_target,
        epochs=epochs,
        batch_size=BATCH_SIZE,
        validation=(x_val, validation_no_target),
        resume_dir=backup_folder(out, settings, stage),
        tensorboard_dir=tensorboard_dir,
    )


history, train_seconds = fit(
    vae, EPOCHS, "vae", tensorboard_dir=out / "tensorboard" if TENSORBOARD else None
)

# %%
"""
## Evaluate: the negative ELBO, and an importance-weighted estimate of -log p(x)

Both on every test image, in nats per image. The ELBO is what training minimised; the
importance-weighted estimate with IMPORTANCE_SAMPLES codes per image is a tighter bound on the
negative log-likelihood, so it must come out lower. On binarized digits these are the figures the
literature gives. Burda, Grosse & Salakhutdinov (ICLR 2016) report, for one stochastic layer on
dynamically binarized MNIST, 86.76 nats for a VAE and 84.78 for an IWAE (the same model trained on
the k = 50 bound), both estimated with k = 5,000; their models (two layers of 200 tanh units, a
code of 50 numbers) trained for 3,280 epochs, this one for tens. On grey pixels the two figures are
binary cross-entropies: the floor is printed beside them, and only the part above it is the model's.
"""


def test_terms(
    encoder: keras.Model, decoder: keras.Model, x: np.ndarray, seed: int
) -> dict[str, float]:
    """The negative ELBO on `x`, in nats per image, and its two terms: one code drawn per image,
    the KL in closed form."""
    rng = np.random.default_rng(seed)
    z_mean, z_log_var = encoder.predict(x, batch_size=1000, verbose=0)
    z = z_mean + np.exp(0.5 * z_log_var) * rng.standard_normal(z_mean.shape, dtype=np.float32)
    logits = logits_of(decoder).predict(z, batch_size=1000, verbose=0)
    reconstruction = float(np.mean(keras.ops.convert_to_numpy(reconstruction_loss(x, logits))))
    kl_per_image = kl_divergence(ops.convert_to_tensor(z_mean), ops.convert_to_tensor(z_log_var))
    kl = float(np.mean(ops.convert_to_numpy(kl_per_image)))
    return {"negative_elbo": reconstruction + kl, "reconstruction": reconstruction, "kl": kl}


def importance_weighted_nll(
    encoder: keras.Model, decoder: keras.Model, x: np.ndarray, k: int, seed: int
) -> float:
    """An estimate of -log p(x) in nats per image (Burda, Grosse & Salakhutdinov, 2016): draw k
    codes z_1..z_k from q(z|x) and average the importance weights p(x|z) p(z) / q(z|x):

        -log p(x) ~ -log (1/k) sum_j p(x|z_j) p(z_j) / q(z_j|x)

    One code (k = 1) gives an estimate of the ELBO; more codes give a tighter bound, which
    approaches -log p(x) as k grows. A Keras model computes the log-weights, the k codes of a few
    images decoded in one batch; the weights, about e^-90, are summed as logs, in float64."""
    code_dim = encoder.output[0].shape[-1]
    log_2pi = math.log(2 * math.pi)
    image = keras.Input(shape=x.shape[1:])
    eps = keras.Input(shape=(k, code_dim))  # (images, k, code)
    z_mean, z_log_var = encoder(image)
    z = ops.expand_dims(z_mean, 1) + ops.exp(0.5 * ops.expand_dims(z_log_var, 1)) * eps
    decoded = logits_of(decoder)(ops.reshape(z, (-1, code_dim)))
    decoded = ops.reshape(decoded, (-1, k, *x.shape[1:]))
    log_p_x_given_z = -reconstruction_loss(ops.expand_dims(image, 1), decoded)
    log_p_z = -0.5 * ops.sum(ops.square(z) + log_2pi, axis=-1)
    log_q_z = -0.5 * ops.sum(ops.square(eps) + log_2pi + ops.expand_dims(z_log_var, 1), axis=-1)
    log_weights = keras.Model([image, eps], log_p_x_given_z + log_p_z - log_q_z)  # (images, k)

    rng = np.random.default_rng(seed)
    # to bound the memory: about 2,000 decoded images in a batch, about 200,000 codes drawn at once
    images_a_batch = max(1, 2_000 // k)  # k codes for each of these images decoded at once
    # images whose codes are drawn at once
    chunk = images_a_batch * max(1, 200_000 // (k * images_a_batch))
    nll = []
    for first in range(0, len(x), chunk):
        images = x[first : first + chunk]
        draws = rng.standard_normal((len(images), k, code_dim), dtype=np.float32)
        log_w = log_weights.predict([images, draws], batch_size=images_a_batch, verbose=0).astype(
            np.float64
        )
        nll.append(math.log(k) - logsumexp(log_w, axis=1))
    return float(np.mean(np.concatenate(nll)))


evaluation_started = time.perf_counter()
test = test_terms(encoder, decoder, x_test, TEST_SEED)
iw_nll = importance_weighted_nll(encoder, decoder, x_test, IMPORTANCE_SAMPLES, TEST_SEED)
evaluation_seconds = time.perf_counter() - evaluation_started
floor = float(np.mean(bce_floor(data.x_test)))  # of the grey test images
print(
    f"\nTest set ({len(x_test):,} images, {pixels}), code of {CODE_DIM} numbers, in nats per image:"
)
print(
    f"  negative ELBO {test['negative_elbo']:.2f} = reconstruction {test['reconstruction']:.2f} + "
    f"KL {test['kl']:.2f}"
)
print(f"  importance-weighted estimate of -log p(x), k = {IMPORTANCE_SAMPLES:,}: {iw_nll:.2f}")
print(
    "  binary cross-entropy floor of the grey test images: "
    f"{floor:.2f}{' (0 on binary ones)' if BINARIZE else ''}"
)
if BINARIZE:
    burda = f"VAE {PUBLISHED['vae']}, IWAE (k = 50) {PUBLISHED['iwae_k50']}"
    print(f"  Burda et al. (2016), 3,280 epochs, k = 5,000: {burda}")
else:
    above_elbo = test["negative_elbo"] - floor
    above_iw = iw_nll - floor
    print(
        f"  above the floor (not likelihoods): negative ELBO {above_elbo:.2f}, importance-weighted "
        f"{above_iw:.2f}"
    )

# %%
"""
## The contrast: a plain autoencoder of the same widths

What the KL term buys, seen in pictures. The same encoder widths with a deterministic code, the
same decoder, trained on the reconstruction term alone (chapter 01's loss, summed over the
pixels), for PLAIN_EPOCHS epochs (fewer than the VAE's, to keep the run short;
`--plain_epochs=30` trains it as long). Nothing pulls its codes together, and it has no prior to
sample from: the fairest stand-in is a normal distribution fitted to its training codes (their
mean and covariance), and we decode codes drawn from that.
"""
plain_encoder = build_encoder(CODE_DIM, tuple(HIDDEN_UNITS), IMAGE_SIZE, variational=False)
plain_decoder = build_decoder(CODE_DIM, tuple(HIDDEN_UNITS), IMAGE_SIZE)
plain = with_loss_terms(plain_encoder, plain_decoder, BINARIZE, SEED)
plain_history, plain_seconds = fit(plain, PLAIN_EPOCHS, "plain")
plain_test_codes = plain_encoder.predict(x_test, batch_size=1000, verbose=0)
plain_logits = logits_of(plain_decoder).predict(plain_test_codes, batch_size=1000, verbose=0)
plain_reconstruction = float(
    np.mean(keras.ops.convert_to_numpy(reconstruction_loss(x_test, plain_logits)))
)
vae_test_means = encoder.predict(x_test, batch_size=1000, verbose=0)[0]  # the mean code, no draw
vae_logits = logits_of(decoder).predict(vae_test_means, batch_size=1000, verbose=0)
vae_mean_reconstruction = float(
    np.mean(keras.ops.convert_to_numpy(reconstruction_loss(x_test, vae_logits)))
)
print(f"\nReconstruction of the test images, -log p(x|code) in nats per image ({pixels} pixels):")
print(f"  plain autoencoder ({PLAIN_EPOCHS} epochs): {plain_reconstruction:.2f}")
print(f"  VAE, decoding the mean code: {vae_mean_reconstruction:.2f}")

rng = np.random.default_rng(SEED)
vae_samples = decoder.predict(rng.standard_normal((100, CODE_DIM), dtype=np.float32), verbose=0)
plain_train_codes = plain_encoder.predict(x_fit, batch_size=1000, verbose=0).astype(np.float64)
plain_code_covariance = np.cov(plain_train_codes, rowvar=False).reshape(CODE_DIM, CODE_DIM)
plain_random_codes = rng.multivariate_normal(
    plain_train_codes.mean(axis=0), plain_code_covariance, 100
)
plain_samples = plain_decoder.predict(plain_random_codes.astype(np.float32), verbose=0)

# %%
"""
## A map: a VAE with a two-number code

The code space seen whole. With a code of two numbers the codes can be drawn directly. A second,
smaller training (MAP_EPOCHS) gives the test codes coloured by class and the grid of images the
decoder makes from codes spread over the prior: each grid point is a quantile of N(0, 1) along each
axis, so equal areas of the grid hold equal probability under the prior.
"""
map_encoder = build_encoder(2, tuple(HIDDEN_UNITS), IMAGE_SIZE, variational=True)
map_decoder = build_decoder(2, tuple(HIDDEN_UNITS), IMAGE_SIZE)
map_vae = with_loss_terms(map_encoder, map_decoder, BINARIZE, SEED)
map_history, map_seconds = fit(map_vae, MAP_EPOCHS, "map_vae")
map_test = test_terms(map_encoder, map_decoder, x_test, TEST_SEED)
print(
    f"\nVAE with a 2-number code ({MAP_EPOCHS} epochs): test negative ELBO "
    f"{map_test['negative_elbo']:.2f} "
    f"= reconstruction {map_test['reconstruction']:.2f} + KL {map_test['kl']:.2f}"
)
map_codes = map_encoder.predict(x_test, batch_size=1000, verbose=0)[0]
quantiles = norm.ppf(np.linspace(0.5 / GRID_SIZE, 1 - 0.5 / GRID_SIZE, GRID_SIZE)).astype(
    np.float32
)
z1, z2 = np.meshgrid(quantiles, quantiles[::-1])  # z2 grows upwards, as on the map's axis
grid = map_decoder.predict(np.stack([z1.ravel(), z2.ravel()], axis=1), verbose=0)

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


def interpolate(codes_a: np.ndarray, codes_b: np.ndarray, steps: int) -> np.ndarray:
    """Codes on the straight line from each code in `codes_a` to its partner in `codes_b`:
    (pairs, steps, code)."""
    t = np.linspace(0, 1, steps, dtype=np.float32)[None, :, None]
    return (1 - t) * codes_a[:, None] + t * codes_b[:, None]


side = (IMAGE_SIZE, IMAGE_SIZE)
plotting.image_grids(
    out / "samples.png",
    {
        "VAE: codes drawn from N(0, I)": vae_samples.reshape(10, 10, *side),
        "plain autoencoder: codes drawn from a normal fitted to its codes": plain_samples.reshape(
            10, 10, *side
        ),
    },
    title=f"Decoded random codes ({CODE_DIM} numbers): the probability of ink at every pixel",
)
plotting.image_rows(
    out / "reconstructions.png",
    {
        f"original ({pixels})": x_test[:12],
        "VAE (mean code)": decoder.predict(vae_test_means[:12], verbose=0),
        "plain AE": plain_decoder.predict(plain_test_codes[:12], verbose=0),
    },
    n=12,
    title=f"Test images through a {CODE_DIM}-number code (decoded: the probability of ink)",
)
pairs = min(6, len(x_test) // 2)
steps = 10
first_of_pair = np.arange(pairs) * 2  # test images 0 and 1, 2 and 3, ...
second_of_pair = first_of_pair + 1
interpolations = {}
for label, codes, model in (
    ("VAE", vae_test_means, decoder),
    ("plain autoencoder", plain_test_codes, plain_decoder),
):
    line = interpolate(codes[first_of_pair], codes[second_of_pair], steps).reshape(-1, CODE_DIM)
    decoded = model.predict(line, verbose=0).reshape(pairs, steps, *side)
    ends = (x_test[first_of_pair][:, None], x_test[second_of_pair][:, None])
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
curves = {
    "VAE: -ELBO": history,
    "VAE: reconstruction": {
        "loss": history["reconstruction_loss"],
        "val_loss": history["val_reconstruction_loss"],
    },
    "VAE: KL": {"loss": history["kl_loss"], "val_loss": history["val_kl_loss"]},
    "plain AE: reconstruction": plain_history,
}
plotting.loss_curves(out / "loss.png", curves, ylabel="nats per image")

metrics = {
    "settings": settings,
    "keras": describe(),
    "data": data.source,
    "binarized": BINARIZE,
    "n_train": len(x_fit),
    "n_validation": len(x_val),
    "n_test": len(x_test),
    "code_dim": CODE_DIM,
    "epochs": EPOCHS,
    "test_neg_elbo_nats": test["negative_elbo"],
    "test_reconstruction_nats": test["reconstruction"],
    "test_kl_nats": test["kl"],
    "importance_samples": IMPORTANCE_SAMPLES,
    "test_iw_nll_nats": iw_nll,
    "bce_floor_nats": floor,
    "test_reconstruction_mean_code_nats": vae_mean_reconstruction,
    "history": history,
    "plain_ae": {
        "epochs": PLAIN_EPOCHS,
        "test_reconstruction_nats": plain_reconstruction,
        "history": plain_history,
    },
    "map": {
        "epochs": MAP_EPOCHS,
        "test_neg_elbo_nats": map_test["negative_elbo"],
        "test_reconstruction_nats": map_test["reconstruction"],
        "test_kl_nats": map_test["kl"],
        "history": map_history,
    },
    "seconds": {
        "vae": round(train_seconds, 1),
        "evaluation": round(evaluation_seconds, 1),
        "plain_ae": round(plain_seconds, 1),
        "map_vae": round(map_seconds, 1),
        "total": round(time.perf_counter() - started, 1),
    },
}
if BINARIZE:
    metrics["published_nats"] = PUBLISHED
else:
    metrics["above_floor_nats"] = {
        "neg_elbo": test["negative_elbo"] - floor,
        "iw_nll": iw_nll - floor,
    }
save_model(encoder, out / "encoder.keras")
save_model(decoder, out / "decoder.keras")
save_json(out / "metrics.json", metrics)
finish(
    out,
    f"test -ELBO {test['negative_elbo']:.2f} nats, importance-weighted {iw_nll:.2f} (k = "
    f"{IMPORTANCE_SAMPLES})",
    started,
)
