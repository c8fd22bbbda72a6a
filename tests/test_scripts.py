"""Every numbered script, end to end on the bundled sample with tiny settings."""

import json
import os
import subprocess
import sys

import pytest

from conftest import ROOT, SAMPLE, SCRIPTS, load_script

PNG = b"\x89PNG\r\n\x1a\n"
TINY = [f"--data={SAMPLE}", "--train_limit=600", "--epochs=1", "--batch_size=100"]


def check_outputs(folder, pngs):
    for name in pngs:
        path = folder / name
        assert path.is_file(), name
        assert path.read_bytes()[:8] == PNG and path.stat().st_size > 2000, name
    assert (folder / "model.keras").stat().st_size > 10_000
    # no temporary files left
    assert not [p.name for p in folder.iterdir() if p.name.startswith(".")]
    return json.loads((folder / "metrics.json").read_text())


def test_01_basic_autoencoder(tmp_path):
    script = load_script("01_basic_autoencoder")
    metrics = script.main([*TINY, "--code_dim=8", f"--output_dir={tmp_path}"])
    saved = check_outputs(tmp_path, ["reconstructions.png", "loss.png", "codes.png"])
    assert saved["n_train"] == 600 and saved["n_test"] == 1000 and saved["code_dim"] == 8
    assert saved["settings"]["EPOCHS"] == 1 and "mnist_sample.npz" in saved["data"]
    for key in (
        "test_mse",
        "test_psnr_db",
        "test_ssim",
        "pca_test_mse",
        "pca_test_psnr_db",
        "epochs",
        "seconds",
    ):
        assert saved[key] == pytest.approx(metrics[key])
    assert 0 < saved["pca_test_mse"] < 0.05  # PCA with 8 components is a decent reconstruction
    assert 0 < saved["test_mse"] < 0.12  # one epoch on 600 images: far from good, but a number
    assert 0 <= saved["test_ssim"] <= 1 and 8 < saved["pca_test_psnr_db"] < 30

    import keras

    model = keras.models.load_model(tmp_path / "model.keras")
    assert model.output_shape == (None, 28, 28)


def run_cli(*args, env_extra=None):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", **(env_extra or {})}
    return subprocess.run(
        [sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=120, env=env
    )


@pytest.mark.parametrize(
    "args, words",
    [
        (["--epoch=3"], ["--epoch", "unknown setting", "--epochs"]),
        (["--code_dim=0"], ["CODE_DIM=0", "a whole number, 1 or more"]),
        (["--data=/no/such/mnist.npz"], ["/no/such/mnist.npz", "no such file"]),
        (
            ["--output_dir=/proc/no-writing-here"],
            ["/proc/no-writing-here", "cannot be created or written"],
        ),
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


TINY_DENOISING = [
    f"--data={SAMPLE}",
    "--train_limit=700",  # HOLDOUT left at its default: a twelfth, 58 images
    "--epochs=1",
    "--batch_size=100",
    "--sweep_levels=(0.2,0.5)",
    "--classical_tuning_images=50",
]


def corruption_of(model):
    """The corruption a training model puts in front of its input: (kind, low, high), or None."""
    from common.corruption import Corrupt

    layers = [layer for layer in model.layers if isinstance(layer, Corrupt)]
    return (layers[0].kind, layers[0].low, layers[0].high) if layers else None


@pytest.fixture
def spies(monkeypatch):
    """Record what every training sees (its model's corruption, its inputs and targets) and every
    array a model is asked to predict."""
    from common import training

    import keras
    import numpy as np

    trainings, predicted = [], []
    real_train, real_predict = training.train_autoencoder, keras.Model.predict

    def spy_train(model, inputs, targets, **kwargs):
        trainings.append((corruption_of(model), np.array(inputs), np.array(targets)))
        return real_train(model, inputs, targets, **kwargs)

    def spy_predict(self, x, *args, **kwargs):
        predicted.append((self.name, np.array(x)))
        return real_predict(self, x, *args, **kwargs)

    monkeypatch.setattr(training, "train_autoencoder", spy_train)
    monkeypatch.setattr(keras.Model, "predict", spy_predict)
    return trainings, predicted, real_predict


def check_trained_on_clean_images(trainings, n):
    """Every training was given the clean training images as input and target: the corruption is the
    model's."""
    from common.data import load_mnist

    import numpy as np

    x_train = load_mnist(SAMPLE).x_train[:n]
    for _, inputs, targets in trainings:
        assert np.array_equal(inputs, targets) and np.array_equal(inputs, x_train[: len(inputs)])


def check_denoiser_scored_on_the_corrupted_test_set(
    folder, saved, predicted, real_predict, kind, model_name, key
):
    """The model was fed the corrupted test set (never the clean one), and the saved model.keras
    maps those images to the outputs that were scored."""
    from common.corruption import Corruption
    from common.data import TEST_SEED, load_mnist
    from common.metrics import psnr_per_image

    import keras
    import numpy as np

    x_test = load_mnist(SAMPLE).x_test
    noisy = Corruption(kind, 0.5)(x_test, TEST_SEED)
    fed = [x for model, x in predicted if model == model_name and x.shape == x_test.shape]
    assert any(np.array_equal(x, noisy) for x in fed)
    assert not any(np.array_equal(x, x_test) for x in fed)
    model = keras.models.load_model(folder / "model.keras")
    rescored = psnr_per_image(x_test, real_predict(model, noisy, batch_size=500, verbose=0)).mean()
    assert rescored == pytest.approx(saved[key], abs=0.01)
    assert saved["n_train"] == 642 and saved["n_validation"] == 58 and saved["n_test"] == 1000


def test_02_gaussian_denoising(tmp_path, spies):
    trainings, predicted, real_predict = spies
    metrics = load_script("02_gaussian_denoising").main(
        [*TINY_DENOISING, "--plain_epochs=1", f"--output_dir={tmp_path}"]
    )
    saved = check_outputs(
        tmp_path, ["corruptions.png", "denoising.png", "sweep.png", "loss.png", "filters.png"]
    )
    assert saved["noise"] == {"type": "gaussian", "std": 0.5}
    assert saved["dae_psnr_db"] == pytest.approx(metrics["dae_psnr_db"])
    # the denoising autoencoder trained behind a noise layer, the plain one on the clean images
    # alone
    assert [corruption for corruption, _, _ in trainings] == [("gaussian", 0.5, 0.5), None]
    check_trained_on_clean_images(trainings, 642)
    check_denoiser_scored_on_the_corrupted_test_set(
        tmp_path, saved, predicted, real_predict, "gaussian", "denoising_autoencoder", "dae_psnr_db"
    )
    assert set(saved["classical"]) == {
        "median filter",
        "Gaussian blur",
        "total variation",
        "non-local means",
    }
    for figures in saved["classical"].values():
        assert (
            5 < figures["psnr_db"] < 30
            and 0 <= figures["ssim"] <= 1
            and len(figures["parameter"]) == 1
        )
    assert [row["level"] for row in saved["sweep"]] == [0.2, 0.5]
    # more noise, lower PSNR
    assert saved["sweep"][0]["noisy_psnr_db"] > saved["sweep"][1]["noisy_psnr_db"]
    assert saved["sweep"][1]["noisy_psnr_db"] == pytest.approx(saved["noisy_psnr_db"])


def test_03_masking_denoising_against_inpainting_told_the_holes(tmp_path, spies):
    from common.corruption import Corruption
    from common.data import TEST_SEED, load_mnist
    from common.metrics import psnr_per_image

    import numpy as np
    from skimage.restoration import inpaint_biharmonic

    trainings, predicted, real_predict = spies
    load_script("03_masking_denoising").main(
        [*TINY_DENOISING, "--inpainting_images=20", f"--output_dir={tmp_path}"]
    )
    saved = check_outputs(tmp_path, ["denoising.png", "sweep.png", "loss.png"])
    assert [corruption for corruption, _, _ in trainings] == [("masking", 0.5, 0.5)]
    check_trained_on_clean_images(trainings, 642)
    check_denoiser_scored_on_the_corrupted_test_set(
        tmp_path, saved, predicted, real_predict, "masking", "denoising_autoencoder", "dae_psnr_db"
    )
    # the inpainting is scikit-image's, told exactly the pixels the masking wiped
    x_test = load_mnist(SAMPLE).x_test
    clean, masked = x_test[:20], Corruption("masking", 0.5)(x_test, TEST_SEED)[:20]
    holes = Corruption("masking", 0.5)(np.ones_like(x_test), TEST_SEED)[:20] == 0
    assert np.array_equal(holes & (clean > 0), (masked == 0) & (clean > 0))  # the same draw
    reference = np.stack([inpaint_biharmonic(m, h) for m, h in zip(masked, holes)])
    told = saved["first_images"]["biharmonic inpainting (told)"]
    assert told["psnr_db"] == pytest.approx(psnr_per_image(clean, reference).mean(), abs=1e-4)
    assert saved["n_inpainting"] == 20
    # on the wiped pixels the masked input is as wrong as it can be: the PSNR of the pixels it
    # zeroed
    wiped = saved["test"]["masked input"]["wiped_pixels_psnr_db"]
    assert wiped < saved["test"]["masked input"]["psnr_db"]
    assert [row["level"] for row in saved["sweep"]] == [0.2, 0.5]
    assert saved["sweep"][1]["inpainting_psnr_db"] == pytest.approx(told["psnr_db"], abs=1e-4)
    assert saved["sweep"][1]["inpainting_wiped_pixels_psnr_db"] == pytest.approx(
        told["wiped_pixels_psnr_db"]
    )
    assert saved["seconds"]["inpainting"] > 0


def test_04_one_level_against_a_range_of_levels(tmp_path, spies):
    trainings, predicted, real_predict = spies
    load_script("04_salt_pepper_denoising").main([*TINY_DENOISING, f"--output_dir={tmp_path}"])
    saved = check_outputs(tmp_path, ["denoising.png", "sweep.png", "loss.png"])
    assert [c for c, _, _ in trainings] == [
        ("salt_and_pepper", 0.5, 0.5),
        ("salt_and_pepper", 0.0, 0.9),
    ]
    check_trained_on_clean_images(trainings, 642)
    # the model saved, and scored as the chapter's figure, is the one trained on the range
    check_denoiser_scored_on_the_corrupted_test_set(
        tmp_path,
        saved,
        predicted,
        real_predict,
        "salt_and_pepper",
        "range_denoiser",
        "range_psnr_db",
    )
    assert saved["range_model_levels"] == {
        "type": "salt_and_pepper",
        "low": 0.0,
        "high": 0.9,
        "salt_ratio": 0.5,
    }
    assert {"one_level_model", "range_model", "total"} <= set(saved["seconds"])
    for row in saved["sweep"]:
        assert {"one_level_psnr_db", "range_psnr_db", "median_psnr_db", "median_size"} <= set(row)
    assert saved["sweep"][1]["range_psnr_db"] == pytest.approx(saved["range_psnr_db"])
    assert saved["sweep"][1]["one_level_psnr_db"] == pytest.approx(saved["one_level_psnr_db"])


def test_tensorboard_logs_losses_and_images(tmp_path):
    tf = pytest.importorskip("tensorflow")

    load_script("01_basic_autoencoder").main(
        [*TINY, "--epochs=2", "--tensorboard", f"--output_dir={tmp_path}"]
    )
    tags = set()
    for events in (tmp_path / "tensorboard").rglob("events.out.tfevents.*"):
        for record in tf.compat.v1.train.summary_iterator(str(events)):
            tags.update(value.tag for value in record.summary.value)
    assert {"epoch_loss", "input", "output"} <= tags


@pytest.mark.slow
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
        env_extra={"KERAS_BACKEND": "tensorflow"},
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
    assert (
        result.stderr.strip().splitlines()[-1]
        == "error: STRATEGY='tpu': expected None (one device) or 'mirrored'"
    )


META = {
    "test_backends.py",
    "test_quick_looks.py",
    "test_settings.py",
    "test_notebooks.py",
    "test_unpacked.py",
}


@pytest.mark.parametrize("path", SCRIPTS, ids=lambda p: p.stem)
def test_every_script_has_an_end_to_end_test_of_its_own(path):
    """Beside the checks that take every script by pattern (quick looks, backends, notebooks,
    settings), each script is run end to end on tiny data by a test that checks what it saves."""
    own = [
        test.name
        for test in (ROOT / "tests").glob("test_*.py")
        if test.name not in META
        and f'"{path.relative_to(ROOT).with_suffix("").as_posix()}"' in test.read_text()
        and ".main(" in test.read_text()
    ]
    assert own, f"{path.name}: no test runs it end to end (load_script(...).main([...]))"
