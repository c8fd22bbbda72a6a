"""
Title: How likely are the test digits? An importance-weighted bound on -log p(x), beside the papers
Description: Load chapter 08's VAE and tighten its negative ELBO into an estimate of the negative
    log-likelihood with k codes per test image (Burda et al., 2016), set beside their VAE's.
Run: python further/08_log_likelihood.py                                     (the full run)
     python further/08_log_likelihood.py --importance_samples=1,10,100       (a quick look)
"""

# %%
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the project's root, for common/

import json
import math
import time

from common import plotting
from common.data import TEST_SEED, binarize, load_data
from common.devices import describe
from common.errors import SettingError
from common.outputs import chapter_files, save_json
from common.script import finish, start

import keras
import numpy as np
from keras import ops
from scipy.special import entr, logsumexp

# --- settings: edit here, or override on the command line (--importance_samples=1,10) ---
# data: as the chapter was run
DATASET = "mnist"  # "mnist" or "fashion_mnist" (ignored when DATA is set)
DATA = None  # an .npz, a folder of MNIST IDX files, or a folder of your own images (see the README)
IMAGE_SIZE = 28  # images are made grey squares of IMAGE_SIZE x IMAGE_SIZE pixels
# the estimate
IMPORTANCE_SAMPLES = (1, 10, 100, 1000)  # k: codes drawn per test image, one estimate for each k;
#                                          the last is the headline (Burda et al.: 5,000)
SEED = 0  # seeds every random draw: NumPy's, Python's and the backend's (the codes: TEST_SEED)
# input and output
CHAPTER_DIR = None  # where 08_variational_autoencoder.py saved its models (None:
#                     outputs/08_variational_autoencoder)
OUTPUT_DIR = None  # where the picture and metrics.json go (None: outputs/08_log_likelihood)

# Burda, Grosse & Salakhutdinov (2016), Table 1: -log p(x) on binarized MNIST, with k = 5,000
PUBLISHED = {
    "vae": 86.76,  # a VAE with one stochastic layer
    "iwae_k50": 84.78,  # the same model trained on the k = 50 bound (an IWAE)
}


# %%
"""
## Introduction

Chapter 08 scored its VAE by the negative ELBO, a bound on the negative log-likelihood
`-log p(x) = -log E_{p(z)}[p(x|z)]` that the model was trained on. The papers give a tighter
figure. Burda, Grosse & Salakhutdinov (ICLR 2016) draw k codes z_1..z_k from the encoder's
`q(z|x)` and average the *importance weights* `p(x|z) p(z) / q(z|x)`:

    -log p(x) <= -log (1/k) sum_j p(x|z_j) p(z_j) / q(z_j|x)      (in expectation over the codes)

With k = 1 this is the negative ELBO (one code, KL by sampling); as k grows the bound tightens
towards `-log p(x)` itself. The gap between the two measures how far the encoder's normal
`q(z|x)` is from the true posterior `p(z|x)`. They report, for one stochastic layer on dynamically
binarized MNIST, 86.76 nats for a VAE and 84.78 for an IWAE (the same model trained on the k = 50
bound), both estimated with k = 5,000; their models (two layers of 200 tanh units, a code of 50
numbers) trained for 3,280 epochs, chapter 08's for 30.

On grey pixels (a chapter run with `--binarize=false`) the same sums are binary cross-entropies,
not likelihoods: even a decoder that returns `p = x` exactly pays the entropy of the grey pixels,
about 45.5 nats per MNIST test image (`bce_floor`). Only the part above that floor is the model's.
"""


def reconstruction_loss(x, logits):
    """-log p(x|z) = -sum_i [x_i log p_i + (1 - x_i) log(1 - p_i)] in nats per image, with
    p = sigmoid(logits), as softplus(logit) - x * logit (as in chapter 08)."""
    return ops.sum(ops.softplus(logits) - x * logits, axis=(-2, -1))


def log_weights_model(encoder: keras.Model, decoder: keras.Model, k: int) -> keras.Model:
    """[images, eps] -> log p(x|z) + log p(z) - log q(z|x) for each image's k codes
    z = mean + exp(log_var / 2) * eps: (images, k). The k codes of an image are decoded in one
    batch through the decoder's logits (the layer before its sigmoid)."""
    code_dim = decoder.input_shape[-1]
    log_2pi = math.log(2 * math.pi)
    image = keras.Input(shape=encoder.input_shape[1:])
    eps = keras.Input(shape=(k, code_dim))
    z_mean, z_log_var = encoder(image)
    z = ops.expand_dims(z_mean, 1) + ops.exp(0.5 * ops.expand_dims(z_log_var, 1)) * eps
    logits = keras.Model(decoder.input, decoder.get_layer("logits").output)
    decoded = ops.reshape(logits(ops.reshape(z, (-1, code_dim))), (-1, k, *image.shape[1:]))
    log_p_x_given_z = -reconstruction_loss(ops.expand_dims(image, 1), decoded)
    log_p_z = -0.5 * ops.sum(ops.square(z) + log_2pi, axis=-1)
    log_q_z = -0.5 * ops.sum(ops.square(eps) + log_2pi + ops.expand_dims(z_log_var, 1), axis=-1)
    return keras.Model([image, eps], log_p_x_given_z + log_p_z - log_q_z)


def importance_weighted_nll(
    encoder: keras.Model, decoder: keras.Model, x: np.ndarray, k: int, seed: int
) -> float:
    """The bound with k codes per image, averaged over `x`, in nats per image. The weights, about
    e^-90, are summed as logs (logsumexp), in float64."""
    log_weights = log_weights_model(encoder, decoder, k)
    code_dim = decoder.input_shape[-1]
    rng = np.random.default_rng(seed)
    images_a_batch = max(1, 2_000 // k)  # about 2,000 decoded images a batch
    chunk = images_a_batch * max(1, 200_000 // (k * images_a_batch))  # about 200,000 codes drawn
    nll = []
    for first in range(0, len(x), chunk):
        images = x[first : first + chunk]
        eps = rng.standard_normal((len(images), k, code_dim), dtype=np.float32)
        log_w = log_weights.predict([images, eps], batch_size=images_a_batch, verbose=0)
        nll.append(math.log(k) - logsumexp(log_w.astype(np.float64), axis=1))
    return float(np.mean(np.concatenate(nll)))


def bce_floor(x: np.ndarray) -> np.ndarray:
    """The least binary cross-entropy an image can be scored (by a decoder returning p = x): the
    entropy sum_i H(x_i) of its pixels, in nats per image (0 for binary pixels)."""
    x = np.asarray(x, dtype=np.float64)
    return np.sum(entr(x) + entr(1 - x), axis=(1, 2))


# %%
"""
## Setup

Apply the command line's overrides (`--help` lists them), create the output folder, seed with SEED.
"""
started = time.perf_counter()
settings, out = start(globals())

# %%
"""
## Load the chapter's VAE and its test images

The encoder and decoder chapter 08 saved, and its metrics.json: whether it trained on binarized
pixels, and on which data. The test images are binarized as the chapter binarized them (the same
seed), so both score the same binary digits.
"""
encoder_path, decoder_path, chapter_metrics_path = chapter_files(
    "08_variational_autoencoder", CHAPTER_DIR, "encoder.keras", "decoder.keras", "metrics.json"
)
chapter = json.loads(chapter_metrics_path.read_text(encoding="utf-8"))
encoder = keras.models.load_model(encoder_path)
decoder = keras.models.load_model(decoder_path)
data = load_data(DATA, DATASET, None, IMAGE_SIZE)
if data.source != chapter["data"] or decoder.output_shape[1:] != data.x_test.shape[1:]:
    raise SettingError(
        f"the chapter's VAE was trained on {chapter['data']} ({decoder.output_shape[1]} pixels a "
        f"side), this run loads {data.source} ({IMAGE_SIZE}): give DATA, DATASET and IMAGE_SIZE "
        "as the chapter had them"
    )
x_test = binarize(data.x_test, TEST_SEED) if chapter["binarized"] else data.x_test
pixels = "binarized" if chapter["binarized"] else "grey"
print(f"data: {data.describe()}")
print(f"chapter 08's VAE, code of {decoder.input_shape[-1]} numbers, from {encoder_path.parent}")
print(f"scoring {len(x_test):,} {pixels} test images")

# %%
"""
## Evaluate: the bound tightens with k

For each k, the bound averaged over the test images, in nats per image. k = 1 estimates the
chapter's negative ELBO (by one more random draw: within a few tenths of it); each larger k must
come out lower. The binary cross-entropy floor of the grey test images is printed beside them:
0 for binary pixels, and on grey ones the part of each figure that no model can remove.
"""
estimates = []
for k in IMPORTANCE_SAMPLES:
    k_started = time.perf_counter()
    estimates.append(importance_weighted_nll(encoder, decoder, x_test, k, TEST_SEED))
    seconds = time.perf_counter() - k_started
    print(f"  k = {k:>5,}: {estimates[-1]:.2f} nats per image ({seconds:.0f} s)")
floor = float(np.mean(bce_floor(data.x_test)))
print(f"\nTest set ({len(x_test):,} images, {pixels}), nats per image:")
print(f"  chapter 08's negative ELBO: {chapter['test_neg_elbo_nats']:.2f}")
print(
    f"  importance-weighted estimate of -log p(x), k = {IMPORTANCE_SAMPLES[-1]:,}: "
    f"{estimates[-1]:.2f}"
)
binary_note = " (0 on binary ones)" if chapter["binarized"] else ""
print(f"  binary cross-entropy floor of the grey test images: {floor:.2f}{binary_note}")
above_floor = None
if chapter["binarized"]:
    burda = f"VAE {PUBLISHED['vae']}, IWAE (k = 50) {PUBLISHED['iwae_k50']}"
    print(f"  Burda et al. (2016), 3,280 epochs, k = 5,000: {burda}")
else:
    above_floor = {
        "neg_elbo": chapter["test_neg_elbo_nats"] - floor,
        "iw_nll": estimates[-1] - floor,
    }
    print(
        f"  above the floor (not likelihoods): negative ELBO {above_floor['neg_elbo']:.2f}, "
        f"importance-weighted {above_floor['iw_nll']:.2f}"
    )

# %%
"""
## Visualize and save

`bound_against_k.png`: the bound against k (a log scale), the chapter's negative ELBO at k = 1,
and, on binarized digits, Burda et al.'s VAE at k = 5,000.
"""
ks = list(IMPORTANCE_SAMPLES)
series = {
    "this VAE: importance-weighted bound": (ks, estimates),
    "this VAE: negative ELBO (chapter 08)": ([1], [chapter["test_neg_elbo_nats"]]),
}
if chapter["binarized"]:
    series["Burda et al. (2016), VAE, k = 5,000"] = ([5000], [PUBLISHED["vae"]])
plotting.xy_curves(
    out / "bound_against_k.png",
    series,
    xlabel="k, codes per test image",
    ylabel="nats per test image",
    title=f"-log p(x) <= the importance-weighted bound ({len(x_test):,} {pixels} test images)",
    logx=True,
)
metrics = {
    "settings": settings,
    "keras": describe(),
    "data": data.source,
    "chapter_dir": str(encoder_path.parent),
    "binarized": chapter["binarized"],
    "n_test": len(x_test),
    "code_dim": decoder.input_shape[-1],
    "chapter_neg_elbo_nats": chapter["test_neg_elbo_nats"],
    "importance_samples": ks,
    "iw_nll_nats": estimates,
    "test_iw_nll_nats": estimates[-1],
    "bce_floor_nats": floor,
    "above_floor_nats": above_floor,
    "published_nats": PUBLISHED if chapter["binarized"] else None,
    "seconds": time.perf_counter() - started,
}
save_json(out / "metrics.json", metrics)
finish(
    out,
    f"-log p(x) <= {estimates[-1]:.2f} nats (k = {ks[-1]:,}), negative ELBO "
    f"{chapter['test_neg_elbo_nats']:.2f}",
    started,
)
