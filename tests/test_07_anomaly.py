"""Chapter 07, anomaly detection, and the script that goes further from its detectors.

The chapter: end to end on the bundled sample with tiny settings, its saved autoencoders reloaded
and its printed AUCs and thresholds checked against a NumPy recomputation of the error, SciPy's
Mann-Whitney U and NumPy's percentile; the number of passes chosen on the validation images, never
on the test images; resuming after Ctrl-C; and the one-line error for a folder without classes.

further/07_better_scores.py: the Mahalanobis distance against SciPy's; the score model against a
NumPy recomputation of its score; end to end from the chapter's saved detectors, with and without
Fashion-MNIST (the sample standing in for it), and the one-line errors when the chapter's files
are missing or its data settings differ."""

import json

from common import data as data_module
from common import training
from common.errors import DataError, MissingChapterError, SettingError

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
    "--batch_size=50",
    "--filters=(4,8)",
    "--code_dim=8",
]
FIGURES = ["auc_per_class.png", "roc_curves.png", "strangest.png", "score_histograms.png"]
CHAPTER = load_script("07_anomaly_detection")
FURTHER = load_script("further/07_better_scores")
COMBINED = "error + code distance"


def sample_arrays():
    """The bundled sample as the chapter sees it at TRAIN_LIMIT=TRAIN: images in [0, 1]."""
    with np.load(SAMPLE) as f:
        x_train = f["x_train"][:TRAIN].astype(np.float32) / 255
        x_test = f["x_test"].astype(np.float32) / 255
        return x_train, f["y_train"][:TRAIN], x_test, f["y_test"]


def numpy_error(autoencoder, images, passes):
    """The squared error after `passes` passes through the autoencoder, summed in NumPy."""
    rebuilt = images
    for _ in range(passes):
        rebuilt = autoencoder.predict(rebuilt, verbose=0)
    return np.sum((images.astype(np.float64) - rebuilt.astype(np.float64)) ** 2, axis=(1, 2))


def scipy_auc(normal, anomalies):
    return mannwhitneyu(anomalies, normal).statistic / (len(normal) * len(anomalies))


@pytest.fixture(scope="module")
def sample_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("anomaly") / "chapter"
    with pytest.MonkeyPatch.context() as mp:
        # MNIST (the sample of it): the published rows are printed
        mp.setenv("MNIST_PATH", str(SAMPLE))
        metrics = CHAPTER.main([*TINY, "--classes=(0,8)", f"--output_dir={out}"])
    return out, metrics


def test_one_class_detectors_on_the_sample(sample_run):
    out, metrics = sample_run
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["classes"] == ["0", "8"]
    assert saved["mean_auc"] == pytest.approx(metrics["mean_auc"])
    for name in FIGURES:
        assert (out / name).read_bytes()[:8] == PNG, name
    # backups and temporary files gone
    assert not [p.name for p in out.iterdir() if p.name.startswith(".")]
    passes = ["autoencoder, 1 pass", "autoencoder, 2 passes", "autoencoder, 3 passes"]
    assert list(saved["auc_per_class"]) == ["PCA", *passes]
    assert saved["published_auc_per_class"]["Deep SVDD"] == {"0": 0.98, "8": 0.939}
    assert saved["published_auc_per_class"]["OCGAN"] == {"0": 0.998, "8": 0.939}
    for model_name, per_class in saved["auc_per_class"].items():
        assert 0 <= min(per_class.values()) <= max(per_class.values()) <= 1
        assert saved["mean_auc"][model_name] == pytest.approx(np.mean(list(per_class.values())))
    assert saved["auc_per_class"]["PCA"]["0"] > 0.8  # PCA on 0s alone already separates them well


def test_the_number_of_passes_is_chosen_on_the_validation_images(sample_run):
    out, _ = sample_run
    saved = json.loads((out / "metrics.json").read_text())
    x_train, y_train, _, _ = sample_arrays()
    validation = {}  # the last tenth of each digit's training images, every digit
    for d in range(10):
        own = x_train[y_train == d]
        validation[d] = own[-round(0.1 * len(own)) :]
    images = np.concatenate(list(validation.values()))
    labels = np.concatenate([np.full(len(v), d) for d, v in validation.items()])
    mean_auc = {}
    for passes in (1, 2, 3):
        aucs = []
        for digit in (0, 8):
            autoencoder = keras.models.load_model(out / saved["detectors"][str(digit)])
            error = numpy_error(autoencoder, images, passes)
            aucs.append(scipy_auc(error[labels == digit], error[labels != digit]))
        mean_auc[passes] = np.mean(aucs)
        assert saved["validation_mean_auc_by_passes"][str(passes)] == pytest.approx(
            mean_auc[passes], abs=1e-4
        )
    assert saved["passes"] == max(mean_auc, key=lambda p: (round(mean_auc[p], 6), -p))
    assert saved["detector"] == list(saved["auc_per_class"])[saved["passes"]]


def test_the_saved_detectors_give_the_printed_figures(sample_run):
    out, _ = sample_run
    saved = json.loads((out / "metrics.json").read_text())
    x_train, y_train, x_test, y_test = sample_arrays()
    for digit in (0, 8):
        autoencoder = keras.models.load_model(out / saved["detectors"][str(digit)])
        reconstructions = autoencoder.predict(x_test[:5], verbose=0)
        assert reconstructions.shape == (5, 28, 28)
        assert 0 <= reconstructions.min() <= reconstructions.max() <= 1
        # the printed AUC of each number of passes: SciPy's U statistic over the number of pairs
        for passes, row in enumerate(list(saved["auc_per_class"])[1:], start=1):
            scores = numpy_error(autoencoder, x_test, passes)
            normal, anomalies = scores[y_test == digit], scores[y_test != digit]
            reference = scipy_auc(normal, anomalies)
            assert saved["auc_per_class"][row][str(digit)] == pytest.approx(reference, abs=1e-4)
        # the threshold: the percentile of the validation images, the last 10 % of the digit's
        # training images, scored by the chosen number of passes
        scores = numpy_error(autoencoder, x_test, saved["passes"])
        normal, anomalies = scores[y_test == digit], scores[y_test != digit]
        own = x_train[y_train == digit]
        held_out = own[-saved["n_validation_per_class"][str(digit)] :]
        assert len(held_out) == round(0.1 * len(own))
        assert saved["n_train_per_class"][str(digit)] == len(own) - len(held_out)
        threshold = np.percentile(numpy_error(autoencoder, held_out, saved["passes"]), 95)
        assert saved["threshold_per_class"][str(digit)] == pytest.approx(threshold, rel=1e-4)
        flagged = np.mean(normal > threshold)
        caught = np.mean(anomalies > threshold)
        assert saved["normal_flagged_per_class"][str(digit)] == pytest.approx(flagged, abs=0.011)
        assert saved["anomalies_caught_per_class"][str(digit)] == pytest.approx(caught, abs=0.002)


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
    assert list(metrics["auc_per_class"])[0] == "PCA"
    assert metrics["published_auc_per_class"] == {}
    for name in ("class_bars.keras", "class_blobs.keras"):
        assert (out / "models" / name).is_file()


# --- further/07_better_scores.py: the code's distance, the score model, out of distribution ---


def numpy_score(autoencoder, images, passes, mean, covariance, standardization):
    """The score model's score, recomputed outside it: z(squared error after `passes` passes) +
    z(squared Mahalanobis distance of the code), the distance from SciPy."""
    error = numpy_error(autoencoder, images, passes)
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
    mean, covariance = FURTHER.fit_gaussian(codes)
    assert np.allclose(mean, codes.mean(axis=0))
    # on the diagonal of the maximum-likelihood covariance
    ridge = 1e-3 * np.var(codes, axis=0).mean()
    assert np.allclose(covariance, np.cov(codes, rowvar=False, bias=True) + ridge * np.eye(5))
    others = rng.normal(size=(20, 5)) * 3
    ours = FURTHER.mahalanobis_squared(others, mean, covariance)
    inverse = np.linalg.inv(covariance)
    assert np.allclose(ours, [mahalanobis(u, mean, inverse) ** 2 for u in others], rtol=1e-10)


@pytest.mark.parametrize("passes", [1, 2])
def test_the_score_model_computes_the_score_of_numpy(tmp_path, passes):
    keras.utils.set_random_seed(0)
    autoencoder = CHAPTER.build_detector(6, (4, 8), 28)
    with np.load(SAMPLE) as f:
        images = f["x_test"][:64].astype(np.float32) / 255
    codes = keras.Model(autoencoder.input, autoencoder.get_layer("code").output).predict(
        images, verbose=0
    )
    mean, covariance = FURTHER.fit_gaussian(codes[:48])
    standardize = {"error": (20.0, 4.0), "distance": (6.0, 3.0)}
    model = FURTHER.build_score_model(autoencoder, passes, mean, covariance, standardize)
    expected = numpy_score(autoencoder, images, passes, mean, covariance, standardize)
    scores = model.predict(images, verbose=0)
    assert scores.shape == (64,)
    assert not model.get_layer("score").trainable_weights  # constants, not trained
    assert np.allclose(scores, expected, rtol=1e-4, atol=1e-3)
    model.save(tmp_path / "score.keras")  # built-in layers only: it reloads without custom objects
    reloaded = keras.models.load_model(tmp_path / "score.keras")
    assert np.allclose(reloaded.predict(images, verbose=0), scores, atol=1e-5)


def run_further(chapter_dir, out, monkeypatch, fashion=None, train_limit=TRAIN):
    """The further script on the chapter's tiny run; Fashion-MNIST absent, or `fashion` (an .npz)
    standing in for it."""
    monkeypatch.setenv("MNIST_PATH", str(SAMPLE))
    monkeypatch.setattr(data_module, "FASHION_DEBIAN", out / "no-debian")
    monkeypatch.setattr(data_module, "FASHION_KERAS_CACHE", out / "no-cache")
    monkeypatch.setattr(data_module, "_online", lambda timeout: False)
    if fashion is None:
        monkeypatch.delenv("FASHION_MNIST_PATH", raising=False)
    else:
        monkeypatch.setenv("FASHION_MNIST_PATH", str(fashion))
    argv = [f"--train_limit={train_limit}", f"--chapter_dir={chapter_dir}", f"--output_dir={out}"]
    return FURTHER.main(argv)


def test_better_scores_from_the_chapters_detectors(sample_run, tmp_path, monkeypatch, capsys):
    chapter_dir, _ = sample_run
    chapter = json.loads((chapter_dir / "metrics.json").read_text())
    metrics = run_further(chapter_dir, tmp_path / "out", monkeypatch)
    out = tmp_path / "out"
    saved = json.loads((out / "metrics.json").read_text())
    assert "out-of-distribution: skipped" in capsys.readouterr().out  # one line, no Fashion-MNIST
    assert saved["out_of_distribution"] is None and metrics["out_of_distribution"] is None
    assert (out / "auc_per_class.png").read_bytes()[:8] == PNG
    assert saved["classes"] == ["0", "8"] and saved["passes"] == 2  # the second pass by default
    assert list(saved["auc_per_class"]) == ["error, 2 passes", "code distance", COMBINED]
    # the error alone is the chapter's row of the second pass, figure for figure
    assert saved["auc_per_class"]["error, 2 passes"] == pytest.approx(
        chapter["auc_per_class"]["autoencoder, 2 passes"], abs=1e-6
    )
    x_train, y_train, x_test, y_test = sample_arrays()
    for digit in ("0", "8"):
        score_model = keras.models.load_model(out / saved["score_models"][digit])
        autoencoder = keras.models.load_model(chapter_dir / chapter["detectors"][digit])
        scores = np.asarray(score_model.predict(x_test, verbose=0), dtype=np.float64)
        # the score model is the score: error and distance from the saved Gaussian
        with np.load(
            out / saved["score_models"][digit].replace("_score.keras", "_gaussian.npz")
        ) as g:
            standardization = dict(zip(("error", "distance"), g["standardization"]))
            expected = numpy_score(
                autoencoder,
                x_test[:200],
                saved["passes"],
                g["mean"],
                g["covariance"],
                standardization,
            )
        assert np.allclose(scores[:200], expected, rtol=1e-4, atol=1e-3)
        normal = scores[y_test == int(digit)]
        anomalies = scores[y_test != int(digit)]
        assert saved["auc_per_class"][COMBINED][digit] == pytest.approx(
            scipy_auc(normal, anomalies), abs=1e-4
        )
        # both parts standardized on the validation images: their scores average 0
        own = x_train[y_train == int(digit)]
        held_scores = score_model.predict(own[-round(0.1 * len(own)) :], verbose=0)
        assert np.mean(held_scores) == pytest.approx(0, abs=1e-3)
        threshold = np.percentile(held_scores, 95)
        assert saved["threshold_per_class"][digit] == pytest.approx(threshold, rel=1e-4, abs=1e-4)
        assert saved["anomalies_caught_per_class"][digit] == pytest.approx(
            np.mean(anomalies > threshold), abs=0.002
        )


def test_clothes_when_fashion_mnist_is_at_hand(tmp_path, monkeypatch):
    """The out-of-distribution part needs a detector for each of the ten digits: untrained ones
    here, saved as the chapter saves its own, and the sample stands in for Fashion-MNIST (so the
    AUC itself means nothing)."""
    chapter_dir = tmp_path / "chapter"
    (chapter_dir / "models").mkdir(parents=True)
    keras.utils.set_random_seed(0)
    detectors = {}
    for digit in range(10):
        detectors[str(digit)] = f"models/class_{digit}.keras"
        CHAPTER.build_detector(4, (4, 8), 28).save(chapter_dir / detectors[str(digit)])
    settings = {"DATASET": "mnist", "DATA": None, "IMAGE_SIZE": 28, "VALIDATION_SIZE": None}
    chapter = {
        "settings": settings | {"TRAIN_LIMIT": 300},
        "classes": list(detectors),
        "detectors": detectors,
        "published_auc_per_class": {},
        "published_mean_auc": {},
    }
    (chapter_dir / "metrics.json").write_text(json.dumps(chapter))
    out = tmp_path / "out"
    metrics = run_further(chapter_dir, out, monkeypatch, fashion=SAMPLE, train_limit=300)
    ood = metrics["out_of_distribution"]
    assert 0 <= ood["auc"] <= 1
    assert 0 <= ood["fashion_caught"] <= 1
    assert 0 <= ood["digits_flagged"] <= 1
    assert (out / "out_of_distribution.png").read_bytes()[:8] == PNG
    assert len(metrics["score_models"]) == 10


def test_without_the_chapters_files_one_clear_line(tmp_path):
    with pytest.raises(MissingChapterError, match="07_anomaly_detection.py` makes it"):
        FURTHER.main([f"--chapter_dir={tmp_path / 'nothing'}", f"--output_dir={tmp_path / 'out'}"])


def test_data_settings_unlike_the_chapters_are_one_clear_line(sample_run, tmp_path):
    chapter_dir, _ = sample_run
    with pytest.raises(SettingError, match=f"the chapter ran with {TRAIN}.*--train_limit={TRAIN}"):
        FURTHER.main([f"--chapter_dir={chapter_dir}", f"--output_dir={tmp_path / 'out'}"])
