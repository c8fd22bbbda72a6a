"""Chapter 07, anomaly detection: the score model against a NumPy recomputation of its score and
SciPy's Mahalanobis distance; the script end to end on the bundled sample with tiny settings, its
saved score models reloaded and checked against SciPy's Mann-Whitney U and NumPy's percentile;
resuming after Ctrl-C; and the one-line error for a folder without classes."""

import json

from common import training
from common.errors import DataError

import keras
import numpy as np
import pytest
from scipy.spatial.distance import mahalanobis
from scipy.stats import mannwhitneyu
from skimage import io

from conftest import SAMPLE, load_script

PNG = b"\x89PNG\r\n\x1a\n"
TRAIN = 1000
TINY = [
    f"--train_limit={TRAIN}",
    "--epochs=1",
    "--out_of_distribution_epochs=1",
    "--batch_size=50",
    "--filters=(4,8)",
]
TINY += ["--code_dim=8"]
FIGURES = ["auc_per_class.png", "roc_curves.png", "strangest.png", "score_histograms.png"]
DETECTOR = "second pass + code distance"
CHAPTER = load_script("07_anomaly_detection")


def numpy_score(autoencoder, images, mean, covariance, standardization):
    """The detector's score, recomputed outside the score model: z(squared error of the
    reconstruction rebuilt) + z(squared Mahalanobis distance of the code), the distance from
    SciPy."""
    x = images.astype(np.float64)
    once = autoencoder.predict(images, verbose=0)
    twice = autoencoder.predict(once, verbose=0).astype(np.float64)
    error = np.sum((x - twice) ** 2, axis=(1, 2))
    codes = keras.Model(autoencoder.input, autoencoder.get_layer("code").output).predict(
        images, verbose=0
    )
    inverse = np.linalg.inv(covariance)
    distance = np.array(
        [mahalanobis(code, mean, inverse) ** 2 for code in codes.astype(np.float64)]
    )
    error_mean, error_std = standardization["error"]
    distance_mean, distance_std = standardization["distance"]
    return (error - error_mean) / error_std + (distance - distance_mean) / distance_std


def test_the_mahalanobis_distance_is_scipys():
    rng = np.random.default_rng(0)
    codes = rng.normal(size=(200, 5)) @ rng.normal(size=(5, 5)) + rng.normal(size=5)
    mean, covariance = CHAPTER.fit_gaussian(codes)
    assert np.allclose(mean, codes.mean(axis=0))
    # on the diagonal of the maximum-likelihood covariance
    ridge = 1e-3 * np.var(codes, axis=0).mean()
    assert np.allclose(covariance, np.cov(codes, rowvar=False, bias=True) + ridge * np.eye(5))
    others = rng.normal(size=(20, 5)) * 3
    ours = CHAPTER.mahalanobis_squared(others, mean, covariance)
    inverse = np.linalg.inv(covariance)
    assert np.allclose(ours, [mahalanobis(u, mean, inverse) ** 2 for u in others], rtol=1e-10)


def test_the_score_model_computes_the_score_of_numpy(tmp_path):
    keras.utils.set_random_seed(0)
    autoencoder = CHAPTER.build_autoencoder(6, (4, 8), 28)
    with np.load(SAMPLE) as f:
        images = f["x_test"][:64].astype(np.float32) / 255
    codes = keras.Model(autoencoder.input, autoencoder.get_layer("code").output).predict(
        images, verbose=0
    )
    mean, covariance = CHAPTER.fit_gaussian(codes[:48])
    standardize = {"error": (20.0, 4.0), "distance": (6.0, 3.0)}
    model = CHAPTER.build_score_model(autoencoder, mean, covariance, standardize)
    expected = numpy_score(autoencoder, images, mean, covariance, standardize)
    scores = model.predict(images, verbose=0)
    # constants, not trained
    assert scores.shape == (64,) and not model.get_layer("score").trainable_weights
    assert np.allclose(scores, expected, rtol=1e-4, atol=1e-3)
    model.save(tmp_path / "score.keras")  # built-in layers only: it reloads without custom objects
    assert np.allclose(
        keras.models.load_model(tmp_path / "score.keras").predict(images, verbose=0),
        scores,
        atol=1e-5,
    )


@pytest.fixture(scope="module")
def sample_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("anomaly")
    with pytest.MonkeyPatch.context() as mp:
        # MNIST (the sample of it): the published rows are printed
        mp.setenv("MNIST_PATH", str(SAMPLE))
        metrics = CHAPTER.main([*TINY, "--classes=(0,8)", f"--output_dir={out}"])
    return out, metrics


def test_one_class_detectors_on_the_sample(sample_run):
    out, metrics = sample_run
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["classes"] == ["0", "8"] and saved["mean_auc"] == pytest.approx(
        metrics["mean_auc"]
    )
    for name in FIGURES:
        assert (out / name).read_bytes()[:8] == PNG, name
    # backups and temporary files gone
    assert not [p.name for p in out.iterdir() if p.name.startswith(".")]
    assert set(saved["auc_per_class"]) == {
        "PCA",
        "autoencoder",
        "autoencoder, second pass",
        DETECTOR,
    }
    assert saved["published_auc_per_class"]["Deep SVDD (Ruff et al.)"] == {"0": 0.98, "8": 0.939}
    assert saved["published_auc_per_class"]["OCGAN (Perera et al.)"] == {"0": 0.998, "8": 0.939}
    for model_name, per_class in saved["auc_per_class"].items():
        assert 0 <= min(per_class.values()) <= max(per_class.values()) <= 1
        assert saved["mean_auc"][model_name] == pytest.approx(np.mean(list(per_class.values())))
    assert saved["auc_per_class"]["PCA"]["0"] > 0.8  # PCA on 0s alone already separates them well


def test_the_saved_score_models_give_the_printed_figures(sample_run):
    out, _ = sample_run
    saved = json.loads((out / "metrics.json").read_text())
    with np.load(SAMPLE) as f:
        x_train, y_train = f["x_train"][:TRAIN].astype(np.float32) / 255, f["y_train"][:TRAIN]
        x_test, y_test = f["x_test"].astype(np.float32) / 255, f["y_test"]
    for digit in (0, 8):
        files = saved["detectors"][str(digit)]
        autoencoder = keras.models.load_model(out / files["autoencoder"])
        reconstructions = autoencoder.predict(x_test[:5], verbose=0)
        assert (
            reconstructions.shape == (5, 28, 28)
            and 0 <= reconstructions.min() <= reconstructions.max() <= 1
        )
        score_model = keras.models.load_model(out / files["score"])
        scores = np.asarray(score_model.predict(x_test, verbose=0), dtype=np.float64)
        assert scores.shape == (len(x_test),)
        # the score model is the score: reconstruction error and distance from the saved Gaussian
        with np.load(out / files["gaussian"]) as g:
            mean = g["mean"]
            covariance = g["covariance"]
            # (mean, std) of each
            standardization = dict(zip(("error", "distance"), g["standardization"]))
        expected = numpy_score(autoencoder, x_test[:200], mean, covariance, standardization)
        assert np.allclose(scores[:200], expected, rtol=1e-4, atol=1e-3)
        # the printed AUC: U statistic of SciPy over the number of pairs, from the reloaded score
        # model
        normal, anomalies = scores[y_test == digit], scores[y_test != digit]
        reference = mannwhitneyu(anomalies, normal).statistic / (len(normal) * len(anomalies))
        assert saved["auc_per_class"][DETECTOR][str(digit)] == pytest.approx(reference, abs=1e-4)
        # the threshold: the percentile of the validation images, the last 10 % of the digit's
        # training images
        own = x_train[y_train == digit]
        held_out = own[-saved["n_validation_per_class"][str(digit)] :]
        assert len(held_out) == round(0.1 * len(own))
        assert saved["n_train_per_class"][str(digit)] == len(own) - len(held_out)
        held_scores = np.asarray(score_model.predict(held_out, verbose=0), dtype=np.float64)
        # both parts standardized on these images
        assert np.mean(held_scores) == pytest.approx(0, abs=1e-3)
        threshold = np.percentile(held_scores, 95)
        assert saved["threshold_per_class"][str(digit)] == pytest.approx(
            threshold, rel=1e-4, abs=1e-4
        )
        flagged, caught = np.mean(normal > threshold), np.mean(anomalies > threshold)
        assert saved["normal_flagged_per_class"][str(digit)] == pytest.approx(flagged, abs=0.011)
        assert saved["anomalies_caught_per_class"][str(digit)] == pytest.approx(caught, abs=0.002)

    ood = saved["out_of_distribution"]
    if ood is not None:  # Fashion-MNIST is installed: the all-digits detector against it
        assert 0 <= ood["auc"] <= 1 and 0 <= ood["fashion_caught"] <= 1
        assert (out / "out_of_distribution.png").is_file() and (
            out / "models" / "all_digits.keras"
        ).is_file()


@pytest.mark.slow
def test_a_rerun_after_ctrl_c_loads_the_detectors_already_trained(tmp_path, monkeypatch):
    trained = []
    real = training.train_autoencoder

    def interrupted_at_the_second(*args, **kwargs):
        if len(trained) == 1:
            raise KeyboardInterrupt
        trained.append(args[1].shape)
        return real(*args, **kwargs)

    monkeypatch.setattr(training, "train_autoencoder", interrupted_at_the_second)
    argv = [f"--data={SAMPLE}", *TINY, "--classes=(1,7)", f"--output_dir={tmp_path}"]
    with pytest.raises(KeyboardInterrupt):
        CHAPTER.main(argv)
    assert len(list((tmp_path / ".resume").glob("*/*.pkl"))) == 1  # the detector of 1 is kept
    trained.clear()
    monkeypatch.setattr(
        training, "train_autoencoder", lambda *a, **k: trained.append(a[1].shape) or real(*a, **k)
    )
    CHAPTER.main(argv)
    # the detector of 7 only: the one of 1, finished before Ctrl-C, was loaded
    assert len(trained) == 1
    assert not (tmp_path / ".resume").exists()


def test_a_folder_without_classes_is_one_clear_line(tmp_path):
    with np.load(SAMPLE) as f:
        for i, image in enumerate(f["x_train"][:12]):
            io.imsave(tmp_path / f"{i}.png", image, check_contrast=False)
    with pytest.raises(
        DataError,
        match="has no classes; one-class detection needs one sub-folder of images per class",
    ):
        CHAPTER.main([f"--data={tmp_path}", f"--output_dir={tmp_path / 'out'}"])


@pytest.mark.slow
def test_a_folder_with_class_subfolders_gets_one_detector_per_class(tmp_path):
    rng = np.random.default_rng(0)
    for name, draw in (
        ("bars", lambda: np.pad(np.full((20, 4), 255), ((4, 4), (12, 12)))),
        ("blobs", None),
    ):
        (tmp_path / "mine" / name).mkdir(parents=True)
        for i in range(30):
            image = draw() if draw else np.pad(np.full((12, 12), 255), 8)
            image = np.roll(image, rng.integers(-3, 4, 2), axis=(0, 1)).astype(np.uint8)
            io.imsave(tmp_path / "mine" / name / f"{i}.png", image, check_contrast=False)
    out = tmp_path / "out"
    metrics = CHAPTER.main(
        [f"--data={tmp_path / 'mine'}", "--epochs=1", "--filters=(4,8)", f"--output_dir={out}"]
    )
    assert metrics["classes"] == ["bars", "blobs"]
    assert set(metrics["auc_per_class"]) == {
        "PCA",
        "autoencoder",
        "autoencoder, second pass",
        DETECTOR,
    }
    assert metrics["published_auc_per_class"] == {} and metrics["out_of_distribution"] is None
    for name in (
        "class_bars.keras",
        "class_bars_score.keras",
        "class_blobs.keras",
        "class_blobs_score.keras",
    ):
        assert (out / "models" / name).is_file()
