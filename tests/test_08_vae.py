"""Chapter 08, the variational autoencoder: end to end on the bundled sample, the saved models read
back without the chapter, and its loss terms and likelihood estimate against independent references."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from scipy.special import logsumexp
from scipy.stats import norm

from conftest import ROOT, SAMPLE, load_script

CHAPTER = "08_variational_autoencoder"
PNG = b"\x89PNG\r\n\x1a\n"
TINY = [
    f"--data={SAMPLE}",
    "--train_limit=600",
    "--epochs=2",
    "--ae_epochs=1",
    "--map_epochs=1",
    "--batch_size=100",
    "--iw_samples=20",
    "--grid_size=5",
]

LOAD_WITHOUT_THE_CHAPTER = """
import json, sys
import keras, numpy as np
encoder = keras.models.load_model(sys.argv[1] + "/encoder.keras")
decoder = keras.models.load_model(sys.argv[1] + "/decoder.keras")
codes = np.random.default_rng(0).standard_normal((7, int(sys.argv[2]))).astype("float32")
images = decoder.predict(codes, verbose=0)
z_mean, z_log_var = encoder.predict(images, verbose=0)
print(json.dumps({"shape": images.shape, "low": float(images.min()), "high": float(images.max()),
                  "mean_shape": z_mean.shape, "log_var_shape": z_log_var.shape}))
"""


def python_env():
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    env.pop("PYTHONPATH", None)  # nothing of the project's on the path
    return env


def test_08_end_to_end_on_the_sample(tmp_path):
    metrics = load_script(CHAPTER).main([*TINY, "--code_dim=8", f"--output_dir={tmp_path}"])
    pngs = ["samples.png", "reconstructions.png", "interpolations.png", "map_codes.png", "map_grid.png", "loss.png"]
    for name in pngs:
        assert (tmp_path / name).read_bytes()[:8] == PNG and (tmp_path / name).stat().st_size > 2000, name
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]  # no backups or temporary files left
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved["n_train"] == 540 and saved["n_validation"] == 60 and saved["n_test"] == 1000
    assert saved["code_dim"] == 8 and saved["iw_samples"] == 20 and "mnist_sample.npz" in saved["data"]
    for key in ("test_negative_elbo", "test_reconstruction", "test_kl", "test_iw_nll"):
        assert saved[key] == pytest.approx(metrics[key])
    # the negative ELBO is the sum of its two terms, both positive
    assert saved["test_negative_elbo"] == pytest.approx(saved["test_reconstruction"] + saved["test_kl"])
    assert saved["test_kl"] > 0 and 0 < saved["test_reconstruction"] < 784 * np.log(2) * 1.5
    # 20 importance-weighted codes give a tighter bound than the ELBO (with room for sampling noise)
    assert saved["test_iw_nll"] < saved["test_negative_elbo"] + 0.5
    history = saved["history"]
    assert len(history["loss"]) == 2 and len(history["val_kl"]) == 2
    assert np.allclose(np.add(history["reconstruction"], history["kl"]), history["loss"], rtol=1e-4)
    assert saved["plain_ae"]["test_reconstruction"] > 0 and saved["map"]["test_negative_elbo"] > 0

    # the encoder and decoder load and run in a fresh Python without the chapter's source
    result = subprocess.run(
        [sys.executable, "-c", LOAD_WITHOUT_THE_CHAPTER, str(tmp_path), "8"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        env=python_env(),
    )
    assert result.returncode == 0, result.stderr
    loaded = json.loads(result.stdout.strip().splitlines()[-1])
    assert loaded["shape"] == [7, 28, 28] and 0 <= loaded["low"] <= loaded["high"] <= 1
    assert loaded["mean_shape"] == [7, 8] and loaded["log_var_shape"] == [7, 8]


def test_kl_term_matches_a_monte_carlo_estimate_from_scipy_densities():
    chapter = load_script(CHAPTER)
    rng = np.random.default_rng(1)
    mean = rng.normal(0, 1.5, (3, 4)).astype(np.float32)
    log_var = rng.normal(0, 1, (3, 4)).astype(np.float32)
    kl = np.asarray(chapter.kl_divergence(mean, log_var))
    sd = np.exp(0.5 * log_var)
    z = mean + sd * rng.standard_normal((100_000, 3, 4))
    log_q, log_p = norm.logpdf(z, mean, sd).sum(-1), norm.logpdf(z).sum(-1)
    monte_carlo = (log_q - log_p).mean(axis=0)
    spread = (log_q - log_p).std(axis=0) / np.sqrt(len(z))
    assert np.all(np.abs(kl - monte_carlo) < 5 * spread + 1e-3)
    assert np.asarray(chapter.kl_divergence(np.zeros((1, 5)), np.zeros((1, 5))))[0] == pytest.approx(0, abs=1e-7)


def test_reconstruction_term_is_binary_cross_entropy_summed_over_pixels():
    chapter = load_script(CHAPTER)
    rng = np.random.default_rng(2)
    x = rng.uniform(0, 1, (4, 6, 6)).astype(np.float32)
    p = rng.uniform(0.01, 0.99, (4, 6, 6)).astype(np.float32)
    numpy = -(x * np.log(p) + (1 - x) * np.log(1 - p)).sum(axis=(1, 2))
    assert np.allclose(np.asarray(chapter.reconstruction_loss(x, p)), numpy, rtol=1e-4)


def tiny_vae(chapter, size=8):
    """A 2-number-code VAE whose encoder returns the prior, q(z|x) = N(0, I), for every image, and
    whose decoder is smooth enough in z for a grid to integrate p(x|z) p(z) accurately."""
    encoder = chapter.build_encoder(2, (16,), size, variational=True)
    decoder = chapter.build_decoder(2, (16,), size)
    for layer in encoder.layers[-2:]:  # z_mean and z_log_var: all zero
        layer.set_weights([np.zeros_like(w) for w in layer.get_weights()])
    first = decoder.layers[1]
    kernel, bias = first.get_weights()
    first.set_weights([0.3 * kernel, bias])
    return encoder, decoder


def test_importance_weighted_estimate_approaches_the_likelihood_found_by_integration():
    chapter = load_script(CHAPTER)
    encoder, decoder = tiny_vae(chapter)
    x = np.random.default_rng(3).uniform(0, 1, (200, 8, 8)).astype(np.float32)
    # -log p(x) = -log integral p(x|z) p(z) dz, by the midpoint rule on a fine grid over [-7, 7]^2
    edges = np.linspace(-7, 7, 281)
    centres = (edges[:-1] + edges[1:]) / 2
    z1, z2 = np.meshgrid(centres, centres)
    grid = np.stack([z1.ravel(), z2.ravel()], axis=1).astype(np.float32)
    p = np.asarray(decoder(grid), dtype=np.float64).reshape(len(grid), -1)
    log_p_x_given_z = (
        x.reshape(len(x), -1).astype(np.float64) @ np.log(p).T + (1 - x.reshape(len(x), -1)) @ np.log(1 - p).T
    )  # (images, grid points)
    log_prior = norm.logpdf(grid).sum(axis=1) + 2 * np.log(edges[1] - edges[0])
    exact = -logsumexp(log_p_x_given_z + log_prior, axis=1).mean()

    elbo = chapter.test_terms(encoder, decoder, x, seed=0)["negative_elbo"]
    iw = {k: chapter.importance_weighted_nll(encoder, decoder, x, k, seed=0) for k in (1, 5000)}
    assert iw[5000] == pytest.approx(exact, abs=0.05)  # many codes: the likelihood itself
    assert exact <= iw[1] + 0.05 and exact <= elbo + 0.05  # both bounds lie above it
    assert iw[1] == pytest.approx(elbo, abs=0.5)  # one code: an estimate of the ELBO


def test_a_bad_setting_gets_one_line():
    result = subprocess.run(
        [sys.executable, f"{CHAPTER}.py", "--iw_samples=0"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env=python_env(),
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1] == "error: --iw_samples=0: must be a whole number of at least 1"
