r"""
Title: Variational autoencoders: from a code that compresses to a code you can sample
Description: Make the encoder output a distribution and pay for straying from a standard normal,
    and codes drawn from that normal decode to digits far more often than a plain autoencoder's.
Run: python 08_variational_autoencoder.py                                         (the full run)
     python 08_variational_autoencoder.py --train_limit=5000 --batch_size=32 \
         --map_epochs=2 --plain_epochs=1                                          (a quick look)
"""

# %%
import math
import time

from common import plotting
from common.data import TEST_SEED, binarize, holdout_split, load_data
from common.devices import describe, jit_compile, random_normal, random_uniform
from common.outputs import save_json, save_model
from common.script import finish, start
from common.training import backup_folder, train_autoencoder

import keras
import numpy as np
from keras import layers, ops
from scipy.stats import norm

# --- hyperparameters: edit here, or override on the command line (--epochs=5) ---
# data
DATASET = "mnist"  # "mnist" or "fashion_mnist" (ignored when DATA is set)
DATA = None  # an .npz, a folder of MNIST IDX files, or a folder of your own images (see the README)
IMAGE_SIZE = 28  # images are made grey squares of IMAGE_SIZE x IMAGE_SIZE pixels
TRAIN_LIMIT = None  # use only the first N training images (None: all 60,000)
VALIDATION_SIZE = None  # the last N training images, never trained on (None: a twelfth, <= 5,000)
BINARIZE = True  # pixels 0 or 1, ink with probability = grey level, a new draw every batch
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
GRID_SIZE = 15  # the map's grid of decoded codes is GRID_SIZE x GRID_SIZE
# output
TENSORBOARD = False  # also write TensorBoard logs (losses, outputs) to OUTPUT_DIR/tensorboard
OUTPUT_DIR = None  # where pictures, metrics.json and the models go (None: outputs/<script name>)

PUBLISHED = {"burda_vae_k5000": 86.76}  # Burda et al. (2016), Table 1: their VAE's -log p(x) bound


# %%
"""
## Introduction

Chapter 01's autoencoder compresses, but nothing makes it use its code space tidily: a code picked
at random between the codes of its training digits decodes to a smudge. It cannot *make* digits.

A variational autoencoder (Kingma & Welling, 2014; Rezende, Mohamed & Wierstra, 2014) models the
images: a code `z` drawn from a standard normal `p(z) = N(0, I)`, decoded into the probability of
ink at every pixel, `p(x|z)`. The encoder gives each image a normal distribution over codes,
`q(z|x) = N(mean, exp(log_var))`, and the loss is the *negative evidence lower bound* (ELBO), in
nats per image (logs to the base e):

    -ELBO(x) = E_q[-log p(x|z)]        reconstruction: chapter 01's loss, from a random code
             + KL(q(z|x) || N(0, I))    the price of a code distribution that strays from the prior

It bounds the negative log-likelihood from above: `-log p(x) <= -ELBO(x)`. The KL term pulls every
image's codes towards the same standard normal, so the codes fill it with few gaps: a code drawn
from N(0, I) mostly decodes to a digit, and the line between two codes passes through digit-like
shapes.

    image -> 512 -> 256 -> mean, log_var -> z = mean + exp(log_var / 2) * eps -> 256 -> 512 -> image
    `---------- encoder ----------'         eps ~ N(0, I)                  `----- decoder -----'
"""


def build_encoder(
    code_dim: int, hidden_units: tuple[int, ...], size: int, variational: bool
) -> keras.Model:
    """Image -> [mean, log_var] of the normal q(z|x) (variational), or image -> code (plain)."""
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
    """Code -> the probability of ink at every pixel, the sigmoid of logits the loss reads."""
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
    """-log p(x|z) = -sum_i [x_i log p_i + (1 - x_i) log(1 - p_i)] in nats per image, with
    p = sigmoid(logits), as softplus(logit) - x * logit: no probability is rounded to 0 or 1."""
    return ops.sum(ops.softplus(logits) - x * logits, axis=(-2, -1))


class Sampling(layers.Layer):
    """One code from q(z|x) per image, z = mean + exp(log_var / 2) * eps with eps ~ N(0, I): the
    *reparameterisation*, through which the gradient flows into `mean` and `log_var`."""

    def __init__(self, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, inputs):
        z_mean, z_log_var = inputs
        eps = random_normal(ops.shape(z_mean), self.seed_generator, z_mean.dtype)
        return z_mean + ops.exp(0.5 * z_log_var) * eps


class Binarize(layers.Layer):
    """In training: each pixel 1 with probability its grey level, else 0, afresh every batch."""

    def __init__(self, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, x, training=False):
        if not training:
            return x
        u = random_uniform(ops.shape(x), self.seed_generator, x.dtype)
        return ops.cast(u < x, x.dtype)


def with_loss_terms(
    encoder: keras.Model, decoder: keras.Model, binarized: bool, seed: int
) -> keras.Model:
    """Image in, the two terms of the negative ELBO out (nats per image), the image binarized afresh
    while it trains when `binarized`. A plain encoder gives the plain autoencoder: KL 0."""
    image = keras.Input(shape=encoder.input_shape[1:], name="image")
    x = Binarize(seed)(image) if binarized else image
    if isinstance(encoder.output, list):
        z_mean, z_log_var = encoder(x)
        z = Sampling(seed)([z_mean, z_log_var])
        # KL(N(mean, exp(log_var)) || N(0, I)) in nats per image, in closed form
        kl = -0.5 * ops.sum(1 + z_log_var - ops.square(z_mean) - ops.exp(z_log_var), axis=-1)
    else:
        z = encoder(x)
        kl = ops.zeros_like(z[:, 0])
    reconstruction = reconstruction_loss(x, logits_of(decoder)(z))
    return keras.Model(image, {"reconstruction": reconstruction, "kl": kl}, name="elbo")


def term_is_the_loss(placeholder, term):
    """The loss of an output that is a loss term already: its value (the target is ignored)."""
    return term


# %%
"""
## Setup

Apply the command line's overrides (`--help` lists them), create the output folder, seed with SEED.
"""
started = time.perf_counter()
settings, out = start(globals())

# %%
"""
## Prepare the data: binarized digits

The last VALIDATION_SIZE training images are held out (never trained on); the labels only colour
the map. For pixels that are 0 or 1 the reconstruction term is the log-probability of the image,
as in the papers; for grey pixels the same sum is a cross-entropy, the probability of nothing. So
by default (BINARIZE) each pixel is made 1 with probability equal to its grey level, else 0: the
training images afresh for every batch (*dynamic binarization*, as in Burda et al., 2016).
"""
data = load_data(DATA, DATASET, TRAIN_LIMIT, IMAGE_SIZE)
print(f"data: {data.describe()}")
x_fit, x_val = holdout_split(data.x_train, VALIDATION_SIZE, "VALIDATION_SIZE")
x_test = data.x_test
pixels = "binarized" if BINARIZE else "grey"
if BINARIZE:  # the held-out images once, with fixed seeds (common/data.py)
    x_val = binarize(x_val, TEST_SEED + 1)
    x_test = binarize(x_test, TEST_SEED)
print(f"training on {len(x_fit):,} images, {len(x_val):,} held out for validation; {pixels} pixels")

# %%
"""
## Build, train and evaluate the model

The encoder and the decoder, two models that save and load on their own, joined for training by
`with_loss_terms`: it binarizes the image, draws one code with `Sampling` and outputs the two terms
of the loss, whose sum is the negative ELBO (the targets Keras asks for are zeros, ignored). Each
epoch prints it (`loss`) and its terms, on the training batches and the held-out images (`val_`).

On the test images, the negative ELBO is a bound on `-log p(x)` like the papers' figures: Burda,
Grosse & Salakhutdinov (2016) give 86.76 nats for their VAE (3,280 epochs), a bound with k = 5,000
codes per image (the -ELBO is the bound with k = 1).
"""


def no_targets(x: np.ndarray) -> dict[str, np.ndarray]:
    return {"reconstruction": np.zeros(len(x)), "kl": np.zeros(len(x))}


def fit(model: keras.Model, epochs: int, stage: str) -> tuple[dict, float]:
    """Adam, its step decayed to zero (cosine); validated and backed up after every epoch."""
    steps = epochs * math.ceil(len(x_fit) / BATCH_SIZE)
    optimizer = keras.optimizers.Adam(keras.optimizers.schedules.CosineDecay(LEARNING_RATE, steps))
    losses = {"reconstruction": term_is_the_loss, "kl": term_is_the_loss}
    # jit_compile: XLA compiles each training step, random draws and all, into one program
    model.compile(optimizer=optimizer, loss=losses, jit_compile=jit_compile())
    return train_autoencoder(
        model,
        x_fit,
        no_targets(x_fit),
        epochs=epochs,
        batch_size=BATCH_SIZE,
        validation=(x_val, no_targets(x_val)),
        resume_dir=backup_folder(out, settings, stage),
        tensorboard_dir=out / "tensorboard" / stage if TENSORBOARD else None,
    )


def evaluate(model: keras.Model) -> dict[str, float]:
    """The training loss and its terms on the test images, nats per image (one code drawn each)."""
    return model.evaluate(x_test, no_targets(x_test), batch_size=1000, return_dict=True, verbose=0)


encoder = build_encoder(CODE_DIM, tuple(HIDDEN_UNITS), IMAGE_SIZE, variational=True)
decoder = build_decoder(CODE_DIM, tuple(HIDDEN_UNITS), IMAGE_SIZE)
vae = with_loss_terms(encoder, decoder, BINARIZE, SEED)
history, train_seconds = fit(vae, EPOCHS, "vae")
test = evaluate(vae)
print(f"\nTest set ({len(x_test):,} images, {pixels}), code of {CODE_DIM} numbers, nats per image:")
print(
    f"  negative ELBO {test['loss']:.2f} = reconstruction {test['reconstruction_loss']:.2f} + "
    f"KL {test['kl_loss']:.2f}"
)
if BINARIZE:  # on grey pixels the figure is a cross-entropy: not comparable
    print(
        f"  beside Burda et al. (2016), VAE after 3,280 epochs: {PUBLISHED['burda_vae_k5000']} "
        "(a tighter bound, k = 5,000 codes per image; further/08_log_likelihood.py: ours)"
    )

# %%
"""
## The contrast: a plain autoencoder of the same widths

What the KL term buys, seen in pictures: the same widths with one code per image, trained on the
reconstruction term alone for PLAIN_EPOCHS (fewer epochs, to keep the run short). With no prior to
sample from, it decodes codes from a normal fitted to its training codes (mean and covariance).
"""
plain_encoder = build_encoder(CODE_DIM, tuple(HIDDEN_UNITS), IMAGE_SIZE, variational=False)
plain_decoder = build_decoder(CODE_DIM, tuple(HIDDEN_UNITS), IMAGE_SIZE)
plain = with_loss_terms(plain_encoder, plain_decoder, BINARIZE, SEED)
plain_history, plain_seconds = fit(plain, PLAIN_EPOCHS, "plain")
plain_test = evaluate(plain)
vae_test_means = encoder.predict(x_test, batch_size=1000, verbose=0)[0]  # the VAE: mean, no draw
vae_logits = logits_of(decoder).predict(vae_test_means, batch_size=1000, verbose=0)
vae_mean_code = float(np.mean(ops.convert_to_numpy(reconstruction_loss(x_test, vae_logits))))
print(f"\nReconstruction of the test images ({pixels}), -log p(x|code) in nats per image:")
print(f"  plain autoencoder ({PLAIN_EPOCHS} epochs): {plain_test['reconstruction_loss']:.2f}")
print(f"  VAE, decoding the mean code: {vae_mean_code:.2f}")

rng = np.random.default_rng(SEED)
vae_samples = decoder.predict(rng.standard_normal((64, CODE_DIM), dtype=np.float32), verbose=0)
plain_train_codes = plain_encoder.predict(x_fit, batch_size=1000, verbose=0).astype(np.float64)
plain_code_covariance = np.cov(plain_train_codes, rowvar=False).reshape(CODE_DIM, CODE_DIM)
plain_codes = rng.multivariate_normal(plain_train_codes.mean(axis=0), plain_code_covariance, 64)
plain_samples = plain_decoder.predict(plain_codes.astype(np.float32), verbose=0)

# %%
"""
## A map: a VAE with a two-number code

The code space seen whole: a second VAE, with a code of two numbers. Its test codes coloured by
class, and what it decodes from a grid at quantiles of N(0, 1) along each axis (equal areas of the
grid hold equal probability under the prior).
"""
map_encoder = build_encoder(2, tuple(HIDDEN_UNITS), IMAGE_SIZE, variational=True)
map_decoder = build_decoder(2, tuple(HIDDEN_UNITS), IMAGE_SIZE)
map_vae = with_loss_terms(map_encoder, map_decoder, BINARIZE, SEED)
map_history, map_seconds = fit(map_vae, MAP_EPOCHS, "map_vae")
map_test = evaluate(map_vae)
print(
    f"\nVAE with a 2-number code ({MAP_EPOCHS} epochs): test negative ELBO {map_test['loss']:.2f} "
    f"= reconstruction {map_test['reconstruction_loss']:.2f} + KL {map_test['kl_loss']:.2f}"
)
map_codes = map_encoder.predict(x_test, batch_size=1000, verbose=0)[0]
quantiles = norm.ppf(np.linspace(0.5, GRID_SIZE - 0.5, GRID_SIZE) / GRID_SIZE).astype(np.float32)
z1, z2 = np.meshgrid(quantiles, quantiles[::-1])  # z2 grows upwards, as on the map's axis
grid = map_decoder.predict(np.stack([z1.ravel(), z2.ravel()], axis=1), verbose=0)

# %%
"""
## Visualize and save

Decoded images are probabilities of ink, in grey. `samples.png`: 64 codes from N(0, I) through the
VAE, 64 from the normal fitted to the plain autoencoder's codes through it: the VAE's are mostly
digits, the other's often smudges. `reconstructions.png`: eight test digits (as scored) and what
each model rebuilds from their codes: both about as well (the figures above), so the KL term costs
little here; the two differ in what they make from new codes. `interpolations.png`: six pairs of
test digits, each model decoding the straight line between the two codes: the VAE's pass through
digit-like shapes, the plain autoencoder's more often through broken strokes.
`map_codes.png`, `map_grid.png`: the map; `loss.png`: the losses; `encoder.keras`, `decoder.keras`.
"""
side = (IMAGE_SIZE, IMAGE_SIZE)
pairs = min(6, len(x_test) // 2)
plotting.image_grids(
    out / "samples.png",
    {
        "VAE: codes drawn from N(0, I)": vae_samples.reshape(8, 8, *side),
        "plain AE: codes from a normal fitted to its codes": plain_samples.reshape(8, 8, *side),
    },
    title=f"Decoded random codes ({CODE_DIM} numbers): the probability of ink at every pixel",
)
plain_test_codes = plain_encoder.predict(x_test[: 2 * pairs], verbose=0)
plotting.image_rows(
    out / "reconstructions.png",
    {
        f"original ({pixels})": x_test[:8],
        "VAE (mean code)": decoder.predict(vae_test_means[:8], verbose=0),
        "plain AE": plain_decoder.predict(plain_test_codes[:8], verbose=0),
    },
    n=8,
    title=f"Test images through a {CODE_DIM}-number code",
)
first = np.arange(pairs) * 2  # test images 0 and 1, 2 and 3, ...
t = np.linspace(0, 1, 7, dtype=np.float32)[None, :, None]  # 7 steps along each line
interpolations = {}
for label, codes, model in (
    ("VAE", vae_test_means, decoder),
    ("plain autoencoder", plain_test_codes, plain_decoder),
):
    line = (1 - t) * codes[first][:, None] + t * codes[first + 1][:, None]
    decoded = model.predict(line.reshape(-1, CODE_DIM), verbose=0).reshape(pairs, 7, *side)
    ends = (x_test[first][:, None], x_test[first + 1][:, None])
    interpolations[label] = np.concatenate([ends[0], decoded, ends[1]], axis=1)
plotting.image_grids(
    out / "interpolations.png",
    interpolations,
    title=f"{pairs} pairs of test digits, two models: from one digit (left) to the other (right)\n"
    "along a straight line between their codes",
)
plotting.labelled_scatter(
    out / "map_codes.png",
    map_codes,
    data.y_test,
    data.class_names,
    xlabel="z1 (mean of q(z|x))",
    ylabel="z2",
    title=f"Test codes of the VAE with a 2-number code ({len(x_test):,} images)",
)
plotting.image_grids(
    out / "map_grid.png",
    {"": grid.reshape(GRID_SIZE, GRID_SIZE, *side)},
    title="Decoded codes at quantiles of N(0, 1) along each axis",
    axis_values=(quantiles, quantiles[::-1]),
    axis_labels=("z1", "z2"),
)
curves = {"VAE: -ELBO": history, "VAE, 2 numbers: -ELBO": map_history, "plain AE": plain_history}
plotting.loss_curves(out / "loss.png", curves, ylabel="nats per image")

metrics = {
    "settings": settings,
    "keras": describe(),
    "data": data.source,
    "binarized": BINARIZE,
    "n_train": len(x_fit),
    "n_validation": len(x_val),
    "n_test": len(x_test),
    "test_neg_elbo_nats": test["loss"],
    "test_reconstruction_nats": test["reconstruction_loss"],
    "test_kl_nats": test["kl_loss"],
    "test_reconstruction_mean_code_nats": vae_mean_code,
    "published_nats": PUBLISHED if BINARIZE else None,
    "plain_ae_test_nats": plain_test,  # loss = reconstruction_loss, kl_loss = 0
    "map_test_nats": map_test,  # loss = reconstruction_loss + kl_loss
    "history": {"vae": history, "plain_ae": plain_history, "map_vae": map_history},
    "seconds": {"vae": train_seconds, "plain_ae": plain_seconds, "map_vae": map_seconds},
    "total_seconds": time.perf_counter() - started,
}
save_model(encoder, out / "encoder.keras")
save_model(decoder, out / "decoder.keras")
save_json(out / "metrics.json", metrics)
finish(out, f"test negative ELBO {test['loss']:.2f} nats per image", started)
