"""Chapter 07, anomaly detection: the script end to end on the bundled sample with tiny settings,
its saved detectors and figures checked against SciPy's Mann-Whitney U and NumPy's percentile,
resuming after Ctrl-C, and the one-line error for a folder without classes."""

import json

from common import training
from common.errors import DataError

import keras
import numpy as np
import pytest
from scipy.stats import mannwhitneyu
from skimage import io

from conftest import SAMPLE, load_script

PNG = b"\x89PNG\r\n\x1a\n"
TRAIN = 1000
TINY = [f"--train_limit={TRAIN}", "--epochs=1", "--ood_epochs=1", "--batch_size=50", "--hidden_units=(32,)"]
FIGURES = ["auc_per_class.png", "roc_curves.png", "strangest.png", "score_histograms.png"]


def scores_of(model, images):
    reconstructions = np.asarray(model(images, training=False), dtype=np.float64)
    return np.sum((images.astype(np.float64) - reconstructions) ** 2, axis=(1, 2))


def test_one_class_detectors_on_the_sample(tmp_path, monkeypatch):
    monkeypatch.setenv("MNIST_PATH", str(SAMPLE))  # MNIST (the sample of it): the published row is printed
    metrics = load_script("07_anomaly_detection").main([*TINY, "--classes=(0,8)", f"--output_dir={tmp_path}"])
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved["classes"] == ["0", "8"] and saved["mean_auc"] == pytest.approx(metrics["mean_auc"])
    for name in FIGURES:
        assert (tmp_path / name).read_bytes()[:8] == PNG, name
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]  # backups and temporary files gone
    assert set(saved["auc_per_class"]) == {"PCA", "autoencoder", "denoising AE"}
    assert saved["published_auc_per_class"]["Deep SVDD (Ruff et al.)"] == {"0": 0.98, "8": 0.939}
    for model_name, per_class in saved["auc_per_class"].items():
        assert 0 <= min(per_class.values()) <= max(per_class.values()) <= 1
        assert saved["mean_auc"][model_name] == pytest.approx(np.mean(list(per_class.values())))
    assert saved["auc_per_class"]["PCA"]["0"] > 0.8  # PCA on 0s alone already separates them well

    with np.load(SAMPLE) as f:
        x_train, y_train = f["x_train"][:TRAIN].astype(np.float32) / 255, f["y_train"][:TRAIN]
        x_test, y_test = f["x_test"].astype(np.float32) / 255, f["y_test"]
    for digit in (0, 8):
        model = keras.models.load_model(tmp_path / "models" / f"class_{digit}.keras")
        reconstructions = np.asarray(model(x_test[:5]))
        assert reconstructions.shape == (5, 28, 28) and 0 <= reconstructions.min() <= reconstructions.max() <= 1
        # the saved detector gives the printed AUC: U statistic of SciPy over the number of pairs
        scores = scores_of(model, x_test)
        normal, anomalies = scores[y_test == digit], scores[y_test != digit]
        reference = mannwhitneyu(anomalies, normal).statistic / (len(normal) * len(anomalies))
        assert saved["auc_per_class"]["autoencoder"][str(digit)] == pytest.approx(reference, abs=1e-4)
        # the threshold: the percentile of the held-out images, the last 10 % of the digit's training images
        own = x_train[y_train == digit]
        held_out = own[-saved["n_held_out_per_class"][str(digit)] :]
        assert len(held_out) == round(0.1 * len(own))
        assert saved["n_train_per_class"][str(digit)] == len(own) - len(held_out)
        threshold = np.percentile(scores_of(model, held_out), 95)
        assert saved["threshold_per_class"][str(digit)] == pytest.approx(threshold, rel=1e-4)
        flagged, caught = np.mean(normal > threshold), np.mean(anomalies > threshold)
        assert saved["normal_flagged_per_class"][str(digit)] == pytest.approx(flagged, abs=0.011)
        assert saved["anomalies_caught_per_class"][str(digit)] == pytest.approx(caught, abs=0.002)

    ood = saved["out_of_distribution"]
    if ood is not None:  # Fashion-MNIST is installed: the all-digits detector against it
        assert 0 <= ood["auc"] <= 1 and 0 <= ood["fashion_caught"] <= 1
        assert (tmp_path / "out_of_distribution.png").is_file() and (tmp_path / "models" / "all_digits.keras").is_file()


def test_a_rerun_after_ctrl_c_loads_the_detectors_already_trained(tmp_path, monkeypatch):
    trained = []
    real = training.train_autoencoder

    def interrupted_at_the_second(*args, **kwargs):
        if len(trained) == 1:
            raise KeyboardInterrupt
        trained.append(args[1].shape)
        return real(*args, **kwargs)

    monkeypatch.setattr(training, "train_autoencoder", interrupted_at_the_second)
    argv = [f"--data={SAMPLE}", *TINY, "--classes=(1,7)", "--masking=0", f"--output_dir={tmp_path}"]
    with pytest.raises(KeyboardInterrupt):
        load_script("07_anomaly_detection").main(argv)
    assert len(list((tmp_path / ".resume").glob("*/*.pkl"))) == 1  # the detector of 1 is kept
    trained.clear()
    monkeypatch.setattr(training, "train_autoencoder", lambda *a, **k: trained.append(a[1].shape) or real(*a, **k))
    load_script("07_anomaly_detection").main(argv)
    assert len(trained) == 1  # the detector of 7 only: the one of 1, finished before Ctrl-C, was loaded
    assert not (tmp_path / ".resume").exists()


def test_a_folder_without_classes_is_one_clear_line(tmp_path):
    with np.load(SAMPLE) as f:
        for i, image in enumerate(f["x_train"][:12]):
            io.imsave(tmp_path / f"{i}.png", image, check_contrast=False)
    with pytest.raises(DataError, match="has no classes; one-class detection needs one sub-folder of images per class"):
        load_script("07_anomaly_detection").main([f"--data={tmp_path}", f"--output_dir={tmp_path / 'out'}"])


def test_a_folder_with_class_subfolders_gets_one_detector_per_class(tmp_path):
    rng = np.random.default_rng(0)
    for name, draw in (("bars", lambda: np.pad(np.full((20, 4), 255), ((4, 4), (12, 12)))), ("blobs", None)):
        (tmp_path / "mine" / name).mkdir(parents=True)
        for i in range(30):
            image = draw() if draw else np.pad(np.full((12, 12), 255), 8)
            image = np.roll(image, rng.integers(-3, 4, 2), axis=(0, 1)).astype(np.uint8)
            io.imsave(tmp_path / "mine" / name / f"{i}.png", image, check_contrast=False)
    out = tmp_path / "out"
    metrics = load_script("07_anomaly_detection").main(
        [f"--data={tmp_path / 'mine'}", "--epochs=1", "--masking=0", "--hidden_units=(16,)", f"--output_dir={out}"]
    )
    assert metrics["classes"] == ["bars", "blobs"] and set(metrics["auc_per_class"]) == {"PCA", "autoencoder"}
    assert metrics["published_auc_per_class"] == {} and metrics["out_of_distribution"] is None
    assert (out / "models" / "class_bars.keras").is_file() and (out / "models" / "class_blobs.keras").is_file()
