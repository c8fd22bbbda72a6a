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
