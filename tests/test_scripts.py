"""Every numbered script, end to end on the bundled sample with tiny settings."""

import json
import os
import subprocess
import sys

import pytest

from conftest import ROOT, SAMPLE, load_script

PNG = b"\x89PNG\r\n\x1a\n"
TINY = [f"--data={SAMPLE}", "--train_limit=600", "--epochs=1", "--batch_size=100"]


def check_outputs(folder, pngs):
    for name in pngs:
        path = folder / name
        assert path.is_file(), name
        assert path.read_bytes()[:8] == PNG and path.stat().st_size > 2000, name
    assert (folder / "model.keras").stat().st_size > 10_000
    assert not [p.name for p in folder.iterdir() if p.name.startswith(".")]  # no temporary files left
    return json.loads((folder / "metrics.json").read_text())


def test_01_basic_autoencoder(tmp_path):
    script = load_script("01_basic_autoencoder")
    metrics = script.main([*TINY, "--code_dim=8", f"--output_dir={tmp_path}"])
    saved = check_outputs(tmp_path, ["reconstructions.png", "loss.png", "codes.png"])
    assert saved["n_train"] == 600 and saved["n_test"] == 1000 and saved["code_dim"] == 8
    assert saved["settings"]["EPOCHS"] == 1 and "mnist_sample.npz" in saved["data"]
    for key in ("test_mse", "test_psnr_db", "test_ssim", "pca_test_mse", "pca_test_psnr_db", "epochs", "train_seconds"):
        assert saved[key] == pytest.approx(metrics[key])
    assert 0 < saved["pca_test_mse"] < 0.05  # PCA with 8 components is a decent reconstruction
    assert 0 < saved["test_mse"] < 0.12  # one epoch on 600 images: far from good, but a number
    assert 0 <= saved["test_ssim"] <= 1 and 8 < saved["pca_test_psnr_db"] < 30

    import keras

    model = keras.models.load_model(tmp_path / "model.keras")
    assert model.output_shape == (None, 28, 28)


def run_cli(*args, env_extra=None):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", **(env_extra or {})}
    return subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=120, env=env)


@pytest.mark.parametrize(
    "args, words",
    [
        (["--epoch=3"], ["--epoch", "unknown setting", "--epochs"]),
        (["--code_dim=0"], ["--code_dim=0", "at least 1"]),
        (["--data=/no/such/mnist.npz"], ["/no/such/mnist.npz", "no such file"]),
        (["--output_dir=/proc/no-writing-here"], ["/proc/no-writing-here", "cannot be created or written"]),
    ],
)
def test_mistakes_get_one_clear_line_and_status_2(args, words):
    result = run_cli("01_basic_autoencoder.py", *args)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ")
    for word in words:
        assert word in last


def test_help_lists_the_settings():
    result = run_cli("01_basic_autoencoder.py", "--help")
    assert result.returncode == 0
    for name in ("--epochs", "--seed", "--train_limit", "--output_dir", "--data", "--code_dim"):
        assert name in result.stdout


DENOISING = {
    "02_gaussian_denoising": ("gaussian", {"std": 0.5}),
    "03_masking_denoising": ("masking", {"fraction": 0.5}),
    "04_salt_pepper_denoising": ("salt_and_pepper", {"fraction": 0.5, "salt_ratio": 0.5}),
}
TINY_DENOISING = [
    f"--data={SAMPLE}",
    "--train_limit=700",
    "--holdout=100",
    "--epochs=1",
    "--plain_epochs=1",
    "--batch_size=100",
    "--sweep_levels=(0.2,0.5)",
    "--baseline_tuning_images=50",
]


@pytest.mark.parametrize("name", sorted(DENOISING))
def test_denoising_chapter(name, tmp_path, monkeypatch):
    import keras
    import numpy as np

    from common import training
    from common.corruption import TEST_SEED, Corruption
    from common.data import load_mnist
    from common.metrics import psnr_per_image

    streams, predicted = [], []
    real_batches, real_predict = training.denoising_batches, keras.Model.predict

    def spy_batches(x, corruption, batch_size, seed):
        streams.append(corruption)
        return real_batches(x, corruption, batch_size, seed)

    def spy_predict(self, x, *args, **kwargs):
        predicted.append((self.name, np.array(x)))
        return real_predict(self, x, *args, **kwargs)

    monkeypatch.setattr(training, "denoising_batches", spy_batches)
    monkeypatch.setattr(keras.Model, "predict", spy_predict)
    metrics = load_script(name).main([*TINY_DENOISING, f"--output_dir={tmp_path}"])

    saved = check_outputs(tmp_path, ["denoising.png", "sweep.png", "loss.png", "filters.png"])
    kind, params = DENOISING[name]
    assert saved["noise"] == {"type": kind, **params}
    assert saved["n_train"] == 600 and saved["n_held_out"] == 100 and saved["n_test"] == 1000
    assert set(saved["baselines"]) == {"median filter", "Gaussian blur", "total variation", "non-local means"}
    for figures in saved["baselines"].values():
        assert 5 < figures["psnr_db"] < 30 and 0 <= figures["ssim"] <= 1 and len(figures["parameter"]) == 1
    assert [row["level"] for row in saved["sweep"]] == [0.2, 0.5]
    assert saved["sweep"][0]["noisy_psnr_db"] > saved["sweep"][1]["noisy_psnr_db"]  # more noise, lower PSNR
    assert saved["dae_psnr_db"] == pytest.approx(metrics["dae_psnr_db"])

    # training: the denoising autoencoder got a corruption stream, the plain one clean batches
    assert streams[0] == Corruption(kind, 0.5) and streams[1] is None
    # evaluation: the models were fed the corrupted test set, never the clean one
    x_test = load_mnist(SAMPLE).x_test
    noisy = Corruption(kind, 0.5)(x_test, TEST_SEED)
    fed = [x for model, x in predicted if model == "denoising_autoencoder" and x.shape == x_test.shape]
    assert any(np.array_equal(x, noisy) for x in fed)
    assert not any(np.array_equal(x, x_test) for x in fed)
    # and the saved model maps corrupted images to the denoised ones that were scored
    model = keras.models.load_model(tmp_path / "model.keras")
    rescored = psnr_per_image(x_test, real_predict(model, noisy, batch_size=500, verbose=0)).mean()
    assert rescored == pytest.approx(saved["dae_psnr_db"], abs=0.01)
    assert saved["noisy_psnr_db"] == pytest.approx(psnr_per_image(x_test, noisy).mean(), abs=1e-6)


def test_tensorboard_logs_losses_and_images(tmp_path):
    import tensorflow as tf

    load_script("01_basic_autoencoder").main([*TINY, "--epochs=2", "--tensorboard", f"--output_dir={tmp_path}"])
    tags = set()
    for events in (tmp_path / "tensorboard").rglob("events.out.tfevents.*"):
        for record in tf.compat.v1.train.summary_iterator(str(events)):
            tags.update(value.tag for value in record.summary.value)
    assert {"epoch_loss", "input", "output"} <= tags


def test_mirrored_strategy_trains_on_two_cpu_devices(tmp_path):
    """--strategy=mirrored: one copy of the model per device, each batch split between them."""
    result = run_cli(
        "01_basic_autoencoder.py",
        "--strategy=mirrored",
        f"--data={SAMPLE}",
        "--train_limit=1000",
        "--epochs=3",
        "--batch_size=50",
        f"--output_dir={tmp_path}",
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "MirroredStrategy over 2 devices" in result.stdout and "device:CPU:1" in result.stdout
    saved = json.loads((tmp_path / "metrics.json").read_text())
    losses = saved["loss_history"]
    assert len(losses) == 3 and losses[-1] < losses[0] - 0.05  # it trains
    assert saved["settings"]["STRATEGY"] == "mirrored"


def test_an_unknown_strategy_is_one_clear_line():
    result = run_cli("01_basic_autoencoder.py", "--strategy=tpu")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == "error: STRATEGY='tpu': expected None (one device) or 'mirrored'"
