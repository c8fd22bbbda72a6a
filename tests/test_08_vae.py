"""Chapter 08, the variational autoencoder, and further/08_log_likelihood.py from the VAE it saved:
end to end on the bundled sample with binarized and with grey pixels, the saved models read back
without the chapter, the binarization and the loss terms, the cross-entropy floor and the
importance-weighted estimate against independent references."""

import json
import os
import subprocess
import sys

from common.errors import MissingChapterError

import keras
import numpy as np
import pytest
from scipy.special import expit, logit, logsumexp
from scipy.stats import bernoulli, norm

from conftest import ROOT, SAMPLE, load_script

CHAPTER = "08_variational_autoencoder"
FURTHER = "further/08_log_likelihood"
PNG = b"\x89PNG\r\n\x1a\n"
TINY = [
    f"--data={SAMPLE}",
    "--train_limit=600",
    "--epochs=2",
    "--plain_epochs=1",
    "--map_epochs=1",
    "--batch_size=100",
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


def entropy_of_grey_pixels(x):
    """sum_i H(x_i) per image, in nats, with 0 log 0 = 0: NumPy only."""
    x = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
    h = np.zeros_like(x)
    inside = (x > 0) & (x < 1)
    h[inside] = -(x[inside] * np.log(x[inside]) + (1 - x[inside]) * np.log(1 - x[inside]))
    return h.sum(axis=1)


@pytest.fixture(scope="module")
def chapter_run(tmp_path_factory):
    """The chapter on tiny data, binarized, once for the tests of its outputs and of the script that
    goes further from them."""
    folder = tmp_path_factory.mktemp("08") / "chapter"
    metrics = load_script(CHAPTER).main([*TINY, "--code_dim=8", f"--output_dir={folder}"])
    return folder, metrics


def check_chapter_outputs(folder, metrics, binarize):
    pngs = [
        "samples.png",
        "reconstructions.png",
        "interpolations.png",
        "map_codes.png",
        "map_grid.png",
        "loss.png",
    ]
    for name in pngs:
        assert (folder / name).read_bytes()[:8] == PNG and (folder / name).stat().st_size > 2000
    # no picture wider than about 1,000 pixels
    for name in pngs:
        assert int.from_bytes((folder / name).read_bytes()[16:20], "big") <= 1100, name
    # no backups or temporary files left
    assert not [p.name for p in folder.iterdir() if p.name.startswith(".")]
    saved = json.loads((folder / "metrics.json").read_text())
    # a twelfth held out
    assert saved["n_train"] == 550 and saved["n_validation"] == 50 and saved["n_test"] == 1000
    assert saved["settings"]["CODE_DIM"] == 8 and "mnist_sample.npz" in saved["data"]
    assert saved["binarized"] is binarize
    for key in ("test_neg_elbo_nats", "test_reconstruction_nats", "test_kl_nats"):
        assert saved[key] == pytest.approx(metrics[key])
    # the negative ELBO is the sum of its two terms, both positive
    assert saved["test_neg_elbo_nats"] == pytest.approx(
        saved["test_reconstruction_nats"] + saved["test_kl_nats"], rel=1e-5
    )
    assert saved["test_kl_nats"] > 0
    assert 0 < saved["test_reconstruction_nats"] < 784 * np.log(2) * 1.5
    assert saved["published_nats"] == ({"burda_vae_k5000": 86.76} if binarize else None)
    history = saved["history"]["vae"]
    assert len(history["loss"]) == 2 and len(history["val_kl_loss"]) == 2
    # the loss is the sum of the two terms (Keras averages the terms over batches, the loss over
    # images: under TensorFlow a last, smaller batch weighs a little differently in the two)
    assert np.allclose(
        np.add(history["reconstruction_loss"], history["kl_loss"]), history["loss"], rtol=0.02
    )
    plain = saved["plain_ae_test_nats"]
    assert plain["kl_loss"] == 0 and plain["loss"] == pytest.approx(plain["reconstruction_loss"])
    assert max(saved["history"]["plain_ae"]["kl_loss"]) == 0
    assert saved["test_reconstruction_mean_code_nats"] > 0
    assert saved["map_test_nats"]["loss"] == pytest.approx(
        saved["map_test_nats"]["reconstruction_loss"] + saved["map_test_nats"]["kl_loss"], rel=1e-5
    )
    return saved


def test_08_end_to_end_on_the_sample(chapter_run):
    folder, metrics = chapter_run
    check_chapter_outputs(folder, metrics, binarize=True)
    # the encoder and decoder load and run in a fresh Python without the chapter's source
    result = subprocess.run(
        [sys.executable, "-c", LOAD_WITHOUT_THE_CHAPTER, str(folder), "8"],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=120,
        env=python_env(),
    )
    assert result.returncode == 0, result.stderr
    loaded = json.loads(result.stdout.strip().splitlines()[-1])
    assert loaded["shape"] == [7, 28, 28] and 0 <= loaded["low"] <= loaded["high"] <= 1
    assert loaded["mean_shape"] == [7, 8] and loaded["log_var_shape"] == [7, 8]


def test_further_08_log_likelihood_from_the_chapters_saved_vae(
    chapter_run, tmp_path, sample_arrays
):
    folder, chapter_metrics = chapter_run
    metrics = load_script(FURTHER).main(
        [
            f"--data={SAMPLE}",
            "--importance_samples=(1,20)",
            f"--chapter_dir={folder}",
            f"--output_dir={tmp_path / 'out'}",
        ]
    )
    out = tmp_path / "out"
    assert (out / "bound_against_k.png").read_bytes()[:8] == PNG
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["importance_samples"] == [1, 20] and saved["n_test"] == 1000
    assert saved["code_dim"] == 8 and saved["binarized"] is True
    assert saved["iw_nll_nats"] == pytest.approx(metrics["iw_nll_nats"])
    assert saved["test_iw_nll_nats"] == saved["iw_nll_nats"][-1]
    assert saved["chapter_neg_elbo_nats"] == pytest.approx(chapter_metrics["test_neg_elbo_nats"])
    k1, k20 = saved["iw_nll_nats"]
    # one code: another draw of the chapter's negative ELBO; 20 codes: a tighter bound
    assert k1 == pytest.approx(saved["chapter_neg_elbo_nats"], abs=3)
    assert k20 < k1
    # the floor is the entropy of the grey test images
    assert saved["bce_floor_nats"] == pytest.approx(
        entropy_of_grey_pixels(sample_arrays["x_test"] / 255).mean()
    )
    assert saved["published_nats"] == {"vae": 86.76, "iwae_k50": 84.78}
    assert saved["above_floor_nats"] is None


def test_further_08_without_the_chapters_files_says_so_in_one_line(tmp_path):
    with pytest.raises(MissingChapterError, match="encoder.keras: not found; `python 08_"):
        load_script(FURTHER).main(
            [f"--chapter_dir={tmp_path / 'nothing'}", f"--output_dir={tmp_path / 'out'}"]
        )


@pytest.mark.slow
def test_08_on_grey_pixels_and_the_cross_entropy_floor_further_on(tmp_path):
    folder = tmp_path / "chapter"
    metrics = load_script(CHAPTER).main(
        [*TINY, "--code_dim=8", "--binarize=false", f"--output_dir={folder}"]
    )
    chapter = check_chapter_outputs(folder, metrics, binarize=False)
    further = load_script(FURTHER).main(
        [
            f"--data={SAMPLE}",
            "--importance_samples=(1,20)",
            f"--chapter_dir={folder}",
            f"--output_dir={tmp_path / 'out'}",
        ]
    )
    # no model scores grey pixels below the floor
    floor = further["bce_floor_nats"]
    assert chapter["test_reconstruction_mean_code_nats"] > floor
    assert chapter["plain_ae_test_nats"]["reconstruction_loss"] > floor
    above = further["above_floor_nats"]
    assert above["neg_elbo"] == pytest.approx(chapter["test_neg_elbo_nats"] - floor)
    assert above["iw_nll"] == pytest.approx(further["iw_nll_nats"][-1] - floor)
    assert further["published_nats"] is None


def test_binarize_draws_ink_with_the_grey_level_as_probability_and_the_seed_fixes_the_draw():
    chapter = load_script(CHAPTER)
    levels = np.array([0, 0.05, 0.3, 0.5, 0.8, 1], dtype=np.float32)
    # 10,000 pixels at each grey level
    x = np.broadcast_to(levels[:, None, None], (6, 100, 100)).copy()
    spread = np.sqrt(levels * (1 - levels) / 10_000)
    once = chapter.binarize(x, 2010)  # a fixed set, binarized once with NumPy
    layer = chapter.Binarize(seed=0)  # training batches, a fresh draw every batch
    in_training = keras.ops.convert_to_numpy(layer(x, training=True))
    for binary in (once, in_training):
        assert set(np.unique(binary)) <= {0.0, 1.0} and binary.dtype == np.float32
        assert np.all(np.abs(binary.mean(axis=(1, 2)) - levels) <= 5 * spread)
        assert binary[0].max() == 0 and binary[-1].min() == 1  # white stays white, black black
    np.testing.assert_array_equal(chapter.binarize(x, 2010), once)  # same seed, same images
    assert np.mean(chapter.binarize(x, 2011) != once) > 0.1  # another seed, another draw
    # not in training: untouched
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(layer(x)), x)
    again = keras.ops.convert_to_numpy(layer(x, training=True))
    # the next batch: a fresh draw, half the 0.5 pixels differ
    assert 0.35 < np.mean((again != in_training)[3]) < 0.65


def test_the_training_model_outputs_the_two_terms_of_the_loss_on_the_image_it_binarized():
    chapter = load_script(CHAPTER)
    encoder, decoder = tiny_vae(chapter)
    x = np.full((4, 8, 8), 0.5, np.float32)
    model = chapter.with_loss_terms(encoder, decoder, binarized=True, seed=0)
    terms = {k: keras.ops.convert_to_numpy(v) for k, v in model(x, training=False).items()}
    assert set(terms) == {"reconstruction", "kl"} and terms["kl"].shape == (4,)
    z_mean, z_log_var = encoder.predict(x, verbose=0)
    kl_closed = 0.5 * (np.exp(z_log_var) + z_mean**2 - 1 - z_log_var).sum(-1)
    np.testing.assert_allclose(terms["kl"], kl_closed, rtol=1e-4, atol=1e-5)
    # out of training the grey image is scored as it is: its binary cross-entropy lies above the
    # floor
    assert np.all(terms["reconstruction"] > entropy_of_grey_pixels(x))
    trained = {k: keras.ops.convert_to_numpy(v) for k, v in model(x, training=True).items()}
    # a binarized image, another score
    assert not np.allclose(trained["reconstruction"], terms["reconstruction"])
    plain = chapter.with_loss_terms(
        chapter.build_encoder(2, (16,), 8, False), decoder, binarized=False, seed=0
    )
    assert np.all(keras.ops.convert_to_numpy(plain(x)["kl"]) == 0)  # no distribution, no KL


def test_bce_floor_is_the_entropy_of_the_grey_pixels_and_no_decoder_goes_below_it(sample_arrays):
    chapter = load_script(FURTHER)  # its floor, and its copy of the chapter's loss
    x = sample_arrays["x_test"][:200].astype(np.float32) / 255
    floor = chapter.bce_floor(x)
    np.testing.assert_allclose(floor, entropy_of_grey_pixels(x), rtol=1e-12)
    assert 30 < floor.mean() < 60  # MNIST's grey edges: about 45 nats an image
    np.testing.assert_array_equal(chapter.bce_floor(np.round(x)), 0)  # binary pixels: no floor
    # the binary cross-entropy reaches the floor at p = x, and lies above it for any other p
    grey = np.clip(x, 1e-4, 1 - 1e-4)
    at_x = np.asarray(chapter.reconstruction_loss(grey, logit(grey)))
    np.testing.assert_allclose(at_x, chapter.bce_floor(grey), rtol=1e-4)
    noise = np.random.default_rng(0).normal(0, 0.5, grey.shape).astype(np.float32)
    assert np.all(
        np.asarray(chapter.reconstruction_loss(grey, logit(grey) + noise)) > chapter.bce_floor(grey)
    )


def test_reconstruction_term_is_the_bernoulli_log_likelihood_and_on_grey_pixels_the_cross_entropy():
    chapter = load_script(CHAPTER)
    rng = np.random.default_rng(2)
    logits = rng.normal(0, 6, (4, 6, 6)).astype(np.float32)
    p = expit(logits.astype(np.float64))
    binary = (rng.uniform(size=(4, 6, 6)) < 0.4).astype(np.float32)
    scipy = -bernoulli.logpmf(binary, p).sum(axis=(1, 2))
    np.testing.assert_allclose(
        np.asarray(chapter.reconstruction_loss(binary, logits)), scipy, rtol=1e-5
    )
    grey = rng.uniform(0, 1, (4, 6, 6)).astype(np.float32)
    numpy = -(grey * np.log(p) + (1 - grey) * np.log(1 - p)).sum(axis=(1, 2))
    np.testing.assert_allclose(
        np.asarray(chapter.reconstruction_loss(grey, logits)), numpy, rtol=1e-5
    )
    # far out in the tails, where a probability would round to 0 or 1 in float32
    far = np.array([[[40.0, -40.0]]], dtype=np.float32)
    assert np.asarray(chapter.reconstruction_loss(np.array([[[0.0, 1.0]]], np.float32), far))[
        0
    ] == pytest.approx(80)


def test_kl_term_matches_a_monte_carlo_estimate_from_scipy_densities():
    chapter = load_script(CHAPTER)
    encoder = chapter.build_encoder(4, (16,), 8, variational=True)
    decoder = chapter.build_decoder(4, (16,), 8)
    model = chapter.with_loss_terms(encoder, decoder, binarized=False, seed=0)
    x = np.random.default_rng(1).uniform(size=(3, 8, 8)).astype(np.float32)
    kl = keras.ops.convert_to_numpy(model(x)["kl"])
    mean, log_var = (a.astype(np.float64) for a in encoder.predict(x, verbose=0))
    rng = np.random.default_rng(1)
    sd = np.exp(0.5 * log_var)
    z = mean + sd * rng.standard_normal((100_000, 3, 4))
    log_q, log_p = norm.logpdf(z, mean, sd).sum(-1), norm.logpdf(z).sum(-1)
    monte_carlo = (log_q - log_p).mean(axis=0)
    spread = (log_q - log_p).std(axis=0) / np.sqrt(len(z))
    assert np.all(np.abs(kl - monte_carlo) < 5 * spread + 1e-3)


def tiny_vae(chapter, size=8):
    """A 2-number-code VAE whose q(z|x) stays close to the prior N(0, I) but moves with the image,
    and whose decoder is smooth enough in z for a grid to integrate p(x|z) p(z) accurately."""
    encoder = chapter.build_encoder(2, (16,), size, variational=True)
    decoder = chapter.build_decoder(2, (16,), size)
    for layer in encoder.layers[-2:]:  # z_mean and z_log_var: small
        layer.set_weights([0.1 * w for w in layer.get_weights()])
    first = decoder.layers[1]
    kernel, bias = first.get_weights()
    first.set_weights([0.3 * kernel, bias])
    return encoder, decoder


def binary_images(n, size=8, seed=3):
    rng = np.random.default_rng(seed)
    return (rng.uniform(size=(n, size, size)) < rng.uniform(0.2, 0.8, (n, 1, 1))).astype(np.float32)


def test_one_code_importance_weighted_is_the_elbo_by_numpy_and_scipy_with_the_same_codes():
    chapter = load_script(CHAPTER)
    further = load_script(FURTHER)
    encoder, decoder = tiny_vae(chapter)
    x = binary_images(50)
    z_mean, z_log_var = (a.astype(np.float64) for a in encoder.predict(x, verbose=0))
    sd = np.exp(0.5 * z_log_var)
    # the codes the estimate draws: eps of shape (images, k, code) from the seed
    eps = np.random.default_rng(7).standard_normal((50, 1, 2), dtype=np.float32)[:, 0]
    z = z_mean + sd * eps
    p = decoder.predict(z.astype(np.float32), verbose=0).astype(np.float64)
    log_p_x_given_z = bernoulli.logpmf(x, p).sum(axis=(1, 2))
    log_weight = log_p_x_given_z + norm.logpdf(z).sum(-1) - norm.logpdf(z, z_mean, sd).sum(-1)
    k1 = further.importance_weighted_nll(encoder, decoder, x, 1, seed=7)
    assert k1 == pytest.approx(-log_weight.mean(), rel=1e-4)
    # and with k codes, -log of the mean weight, by NumPy
    eps = np.random.default_rng(7).standard_normal((50, 30, 2), dtype=np.float32)
    z = z_mean[:, None] + sd[:, None] * eps
    p = decoder.predict(z.reshape(-1, 2).astype(np.float32), verbose=0).astype(np.float64)
    p = p.reshape(50, 30, 8, 8)
    log_w = bernoulli.logpmf(x[:, None], p).sum(axis=(2, 3))
    log_w += norm.logpdf(z).sum(-1) - norm.logpdf(z, z_mean[:, None], sd[:, None]).sum(-1)
    k30 = further.importance_weighted_nll(encoder, decoder, x, 30, seed=7)
    assert k30 == pytest.approx(-(logsumexp(log_w, axis=1) - np.log(30)).mean(), rel=1e-4)


def test_importance_weighted_estimate_approaches_the_likelihood_found_by_integration():
    chapter = load_script(CHAPTER)
    further = load_script(FURTHER)
    encoder, decoder = tiny_vae(chapter)
    x = binary_images(200)
    # -log p(x) = -log integral p(x|z) p(z) dz, by the midpoint rule on a fine grid over [-7, 7]^2
    edges = np.linspace(-7, 7, 281)
    centres = (edges[:-1] + edges[1:]) / 2
    z1, z2 = np.meshgrid(centres, centres)
    grid = np.stack([z1.ravel(), z2.ravel()], axis=1).astype(np.float32)
    p = decoder.predict(grid, verbose=0).astype(np.float64).reshape(len(grid), -1)
    flat = x.reshape(len(x), -1).astype(np.float64)
    log_p_x_given_z = flat @ np.log(p).T + (1 - flat) @ np.log(1 - p).T  # (images, grid points)
    log_prior = norm.logpdf(grid).sum(axis=1) + 2 * np.log(edges[1] - edges[0])
    exact = -logsumexp(log_p_x_given_z + log_prior, axis=1).mean()

    # the negative ELBO the chapter trains on, averaged over many draws of the code
    model = chapter.with_loss_terms(encoder, decoder, binarized=True, seed=0)
    draws = [model(x) for _ in range(50)]
    elbo = np.mean(
        [np.mean(keras.ops.convert_to_numpy(d["reconstruction"] + d["kl"])) for d in draws]
    )
    iw = {k: further.importance_weighted_nll(encoder, decoder, x, k, seed=0) for k in (1, 20, 5000)}
    assert iw[5000] == pytest.approx(exact, abs=0.05)  # many codes: the likelihood itself
    # the bounds lie above it, tighter with k
    assert exact <= iw[20] + 0.05 <= iw[1] + 0.1 and exact <= elbo + 0.05
    assert iw[1] == pytest.approx(elbo, abs=0.5)  # one code: an estimate of the ELBO
    # the seed fixes the codes
    assert further.importance_weighted_nll(encoder, decoder, x, 20, seed=0) == iw[20]


@pytest.mark.parametrize(
    "script, setting, message",
    [
        (CHAPTER, "--map_epochs=0", "MAP_EPOCHS=0: must be a whole number, 1 or more"),
        (
            FURTHER,
            "--importance_samples=(10,0)",
            "IMPORTANCE_SAMPLES=(10, 0): each must be a whole number, 1 or more",
        ),
    ],
)
def test_a_bad_setting_gets_one_line(script, setting, message):
    result = subprocess.run(
        [sys.executable, f"{script}.py", setting],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env=python_env(),
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1] == f"error: {message}"
