"""Nothing lost or half-written, a clear stop on NaN, resuming after Ctrl-C, reproducible reruns."""

import json

from common import outputs, script
from common.corruption import Corruption
from common.errors import OutputError, TrainingError
from common.outputs import atomic_path, save_json
from common.training import backup_folder, check_finite, train_autoencoder

import keras
import numpy as np
import pytest

from conftest import SAMPLE, load_script


def tiny_autoencoder(corruption=None):
    image = keras.Input((28, 28))
    h = image if corruption is None else corruption.layer(0)(image)
    h = keras.layers.Dense(8, activation="relu")(keras.layers.Flatten()(h))
    out = keras.layers.Reshape((28, 28))(keras.layers.Dense(784, activation="sigmoid")(h))
    model = keras.Model(image, out)
    model.compile(optimizer="adam", loss="mse")
    return model


def test_an_interrupted_write_keeps_the_previous_file(tmp_path):
    path = save_json(tmp_path / "metrics.json", {"psnr_db": 20.0})
    with pytest.raises(KeyboardInterrupt):
        with atomic_path(path) as tmp:
            tmp.write_text('{"psnr_db": 1')  # half-written when the interrupt comes
            raise KeyboardInterrupt
    assert json.loads(path.read_text()) == {"psnr_db": 20.0}
    assert path.stat().st_mode & 0o644 == 0o644  # readable like any other file, not private
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]  # the temporary file is gone


def test_unwritable_output_folder_is_reported_before_any_work(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(OutputError, match="a-file/out: cannot be created or written"):
        outputs.output_dir("01_basic_autoencoder.py", str(blocker / "out"))


def test_nan_loss_stops_training_with_a_clear_error():
    x = np.full((64, 28, 28), np.nan, np.float32)  # NaN pixels: the very first loss is NaN
    with pytest.raises(TrainingError, match="became nan after 1 epoch.*nothing was saved"):
        train_autoencoder(tiny_autoencoder(), x, x, epochs=3, batch_size=32)
    check_finite({"loss": [0.5, 0.4]})  # finite losses pass
    with pytest.raises(TrainingError, match="inf"):
        check_finite({"loss": [0.5, float("inf")]})


class InterruptAt(keras.callbacks.Callback):
    def __init__(self, epoch):
        super().__init__()
        self.epoch = epoch

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == self.epoch:
            raise KeyboardInterrupt


def test_training_resumes_from_the_last_completed_epoch(tmp_path, capsys):
    x = np.random.default_rng(0).random((64, 28, 28)).astype(np.float32)
    folder = backup_folder(tmp_path, {"EPOCHS": 4, "OUTPUT_DIR": "x"}, "stage")
    # output folder aside
    assert folder == backup_folder(tmp_path, {"EPOCHS": 4, "OUTPUT_DIR": "y"}, "stage")
    # other settings
    assert folder != backup_folder(tmp_path, {"EPOCHS": 5, "OUTPUT_DIR": "x"}, "stage")
    noise = Corruption("masking", 0.3)
    with pytest.raises(KeyboardInterrupt):
        train_autoencoder(
            tiny_autoencoder(noise),
            x,
            x,
            epochs=4,
            batch_size=32,
            resume_dir=folder,
            callbacks=[InterruptAt(2)],
        )
    assert (folder / "latest.weights.h5").exists()  # epochs 1 and 2 are backed up
    history, _ = train_autoencoder(
        tiny_autoencoder(noise), x, x, epochs=4, batch_size=32, resume_dir=folder
    )
    assert "resuming from the backup" in capsys.readouterr().out
    assert len(history["loss"]) == 2  # only epochs 3 and 4 were run again
    assert not (tmp_path / ".resume").exists()  # the backup is removed once training ends


def test_a_training_of_few_steps_says_once_what_to_change(monkeypatch, capsys):
    from common import training

    monkeypatch.setattr(training, "_noted_few_steps", False)
    x = np.random.default_rng(0).random((64, 28, 28)).astype(np.float32)
    train_autoencoder(tiny_autoencoder(), x, x, epochs=3, batch_size=32)  # 2 steps x 3 epochs
    train_autoencoder(tiny_autoencoder(), x, x, epochs=3, batch_size=32)
    notes = [line for line in capsys.readouterr().out.splitlines() if line.startswith("note: only")]
    assert notes == [notes[0]] and "6 gradient steps" in notes[0] and "--batch_size" in notes[0]
    monkeypatch.setattr(training, "_noted_few_steps", False)
    train_autoencoder(tiny_autoencoder(), x, x, epochs=100, batch_size=32)  # 200 steps: enough
    assert "note: only" not in capsys.readouterr().out


def test_ctrl_c_says_in_one_line_what_was_kept(tmp_path, capsys):
    ns = {"__file__": str(tmp_path / "demo.py"), "SEED": 0, "OUTPUT_DIR": str(tmp_path / "out")}

    def main(backed_up):
        settings, out = script.start(ns, [])
        save_json(out / "metrics.json", {"a": 1})
        if backed_up:
            # what train_autoencoder leaves
            (out / ".resume" / "stage-0123456789").mkdir(parents=True)
        raise KeyboardInterrupt

    for backed_up, then in (
        (False, "a rerun starts training from the beginning"),
        (True, "to resume training"),
    ):
        with pytest.raises(SystemExit) as caught:
            script.run(lambda backed_up=backed_up: main(backed_up))
        assert caught.value.code == 130
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1
        assert (
            "interrupted: kept metrics.json" in err[0]
            and str(tmp_path / "out") in err[0]
            and then in err[0]
        )


def test_same_seed_gives_the_same_figures(tmp_path):
    args = [
        f"--data={SAMPLE}",
        "--train_limit=500",
        "--epochs=2",
        "--batch_size=100",
        "--code_dim=4",
    ]
    script01 = load_script("01_basic_autoencoder")
    first = script01.main([*args, f"--output_dir={tmp_path / 'a'}"])
    second = script01.main([*args, f"--output_dir={tmp_path / 'b'}"])
    other_seed = script01.main([*args, "--seed=1", f"--output_dir={tmp_path / 'c'}"])
    for key in ("test_mse", "test_psnr_db", "test_ssim", "pca_test_mse"):
        assert first[key] == second[key]
    assert first["loss_history"] == second["loss_history"]
    assert other_seed["test_mse"] != first["test_mse"]
