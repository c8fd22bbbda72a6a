"""Every chapter end to end on tiny data under another Keras backend than the suite's, without
TensorFlow: each in a Python of its own, KERAS_BACKEND set and TensorFlow made unimportable, as in
an environment made from requirements-jax.txt alone. Its saved model then loads and runs here.

JAX by default; SECOND_BACKENDS=jax,torch (or torch) runs them under PyTorch too, where it is
installed (its wheel is too large for CI)."""

import json
import os
import subprocess
import sys

from common.data import load_mnist
from common.metrics import mse_per_image
from common.script import chapter_definitions

import keras
import numpy as np
import pytest

from conftest import CHAPTERS, ROOT, SAMPLE, SCRIPTS, chapter_of

BACKENDS = [b for b in os.environ.get("SECOND_BACKENDS", "jax").split(",") if b]
TINY = {
    "01_basic_autoencoder": ["--train_limit=600", "--epochs=1", "--batch_size=100"],
    "02_gaussian_denoising": [
        "--train_limit=700",
        "--epochs=1",
        "--batch_size=100",
        "--sweep_levels=(0.5,)",
    ]
    + ["--classical_tuning_images=50"],
    "03_masking_denoising": [
        "--train_limit=700",
        "--epochs=1",
        "--batch_size=100",
        "--sweep_levels=(0.5,)",
    ]
    + ["--classical_tuning_images=50", "--inpainting_images=20"],
    "04_salt_pepper_denoising": [
        "--train_limit=700",
        "--epochs=1",
        "--batch_size=100",
        "--sweep_levels=(0.5,)",
    ]
    + ["--classical_tuning_images=50"],
    "05_stacked_autoencoder": [
        "--train_limit=1200",
        "--hidden_units=(64,32)",
        "--pretrain_epochs=1",
        "--epochs=2",
    ]
    + [
        "--few_labels=(20,)",
        "--few_label_draws=1",
        "--few_label_probe_steps=5",
        "--few_label_steps=10",
    ],
    "06_deep_autoencoder": [
        "--train_limit=1000",
        "--hidden_units=(64,32)",
        "--code_dim=6",
        "--pretrain_epochs=1",
    ]
    + ["--epochs=2", "--batch_size=50"],
    "07_anomaly_detection": [
        "--train_limit=1000",
        "--classes=(0,8)",
        "--epochs=1",
        "--filters=(4,8)",
        "--code_dim=8",
    ],
    "07_better_scores": ["--train_limit=1000", "--out_of_distribution=false"],
    "08_variational_autoencoder": [
        "--train_limit=600",
        "--epochs=1",
        "--plain_epochs=1",
        "--map_epochs=1",
    ]
    + ["--batch_size=100", "--grid_size=5", "--code_dim=8"],
    "08_log_likelihood": ["--importance_samples=(1,20)"],
    "09_segmentation": [
        "--train_limit=600",
        "--image_size=32",
        "--filters=(4,8)",
        "--scenes_per_epoch=200",
    ]
    + ["--test_scenes=60", "--batch_size=20"],
    "09_few_masks": [
        "--scenes_per_epoch=200",
        "--batch_size=20",
        "--few_masks=(10,)",
        "--few_mask_draws=1",
        "--few_mask_steps=4",
    ],
    "10_sparse_autoencoder": [
        "--train_limit=600",
        "--epochs=1",
        "--code_dim=64",
        "--k=8",
        "--batch_size=100",
    ],
    "10_sparse_frontier": [
        "--train_limit=600",
        "--frontier_ks=(4,)",
        "--frontier_l1_weights=(0.01,)",
        "--classifier_epochs=2",
    ],
    "11_denoising_diffusion": [
        "--train_limit=600",
        "--epochs=1",
        "--batch_size=100",
        "--filters=(4,8,8)",
        "--samples=100",
        "--sampling_steps=3",
    ]
    + ["--step_study=(2,3)", "--step_study_samples=50", "--classifier_epochs=1"]
    + ["--vae_epochs=1", "--vae_dir=no-such-folder"],
}
WITHOUT_TENSORFLOW = """
import runpy, sys
sys.modules["tensorflow"] = None  # as if it were not installed: any import of it fails
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def run_under(backend, script, out):
    """The script on its tiny settings; a script that goes further after its chapter's, whose
    saved models it reads (from out/chapter)."""
    env = {**os.environ, "KERAS_BACKEND": backend, "MNIST_PATH": str(SAMPLE)}
    path = SCRIPT_PATHS[script]
    extra = []
    if path not in CHAPTERS:
        chapter = chapter_of(path)
        before = run_under(backend, chapter.stem, out / "chapter")
        if before.returncode != 0:
            return before
        extra = [f"--chapter_dir={out / 'chapter'}"]
    command = [
        sys.executable,
        "-c",
        WITHOUT_TENSORFLOW,
        str(path),
        *TINY[script],
        *extra,
        f"--output_dir={out}",
    ]
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)


SCRIPT_PATHS = {path.stem: path for path in SCRIPTS}


def test_every_chapter_has_its_tiny_settings_here():
    assert set(TINY) >= set(SCRIPT_PATHS)


@pytest.mark.slow
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("script", SCRIPT_PATHS, ids=lambda s: s)
def test_the_chapter_runs_under_another_backend_without_tensorflow(script, backend, tmp_path):
    pytest.importorskip(backend)
    result = run_under(backend, script, tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert {"jax": "JAX", "torch": "PyTorch"}[backend] in metrics["keras"]
    saved = sorted(tmp_path.rglob("*.keras"))
    assert saved, "a trained model is saved"
    # defines (and registers) any layer of the chapter's own
    chapter_definitions(SCRIPT_PATHS[script])
    if SCRIPT_PATHS[script] not in CHAPTERS:  # and its chapter's, for the models in out/chapter
        chapter_definitions(chapter_of(SCRIPT_PATHS[script]))
    for path in saved:  # every model saved under that backend loads and runs under this one
        model = keras.models.load_model(path)
        if isinstance(model.input_shape, list):  # 11's denoiser: a noisy image and its level, > 0
            inputs = [np.ones((2, *shape[1:]), np.float32) for shape in model.input_shape]
        else:
            inputs = np.zeros((2, *model.input_shape[1:]), np.float32)
        assert np.all(np.isfinite(model.predict(inputs, verbose=0)))
    if script == "01_basic_autoencoder":  # and gives the figure it gave there
        x_test = load_mnist(SAMPLE).x_test
        model = keras.models.load_model(tmp_path / "model.keras")
        mse = mse_per_image(x_test, model.predict(x_test, batch_size=500, verbose=0)).mean()
        assert mse == pytest.approx(metrics["test_mse"], rel=1e-4)
