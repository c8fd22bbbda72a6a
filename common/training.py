"""Fitting a model the way every chapter does: shuffled batches of the training images, one log
line per epoch when the output is not a terminal, a backup after every epoch to resume from, a
clear stop on a NaN loss, TensorBoard logs on request, and the time it took."""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import random
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from common.batches import shuffled_batches
from common.devices import tensorflow_installed
from common.errors import SettingError, TrainingError

import keras
import numpy as np

FEW_STEPS = 200  # a training with fewer gradient steps than this, in all, rarely gets far
_noted_few_steps = False  # the note below is printed once a run


def note_if_few_steps(steps_per_epoch: int, epochs: int) -> None:
    """Print, once a run, a line saying what to change when a training has too few gradient steps
    to get anywhere: what happens on a few hundred images with settings made for 60,000."""
    global _noted_few_steps
    if steps_per_epoch * epochs >= FEW_STEPS or _noted_few_steps:
        return
    _noted_few_steps = True
    print(
        f"note: only {steps_per_epoch * epochs} gradient steps in this training ({steps_per_epoch} "
        f"an epoch x {epochs} "
        "epochs); on few images, a smaller --batch_size and more --epochs give a model the steps "
        "it needs "
        "(see the README, 'Data: MNIST, your own images, and Fashion-MNIST')"
    )


def progress_verbosity() -> int:
    """Keras progress bar on a terminal; one line per epoch in logs and pipes."""
    return 1 if sys.stdout.isatty() else 2


def train_autoencoder(
    model: keras.Model,
    inputs: np.ndarray,
    targets: np.ndarray,
    *,
    epochs: int,
    batch_size: int,
    validation: tuple[np.ndarray, np.ndarray] | None = None,
    callbacks: list[keras.callbacks.Callback] | None = None,
    resume_dir: Path | None = None,
    tensorboard_dir: Path | None = None,
    preview: np.ndarray | None = None,
) -> tuple[dict[str, list[float]], float]:
    """`model.fit(inputs, targets)` for `epochs` passes in batches of `batch_size`, in a new order
    every epoch (`common.batches.shuffled_batches`).

    A model that should see corrupted inputs carries its corruption as its first layer, active only
    in training (see `common.corruption`), so `inputs` are the clean images. With `resume_dir`, the
    model and optimizer are backed up there after every epoch; a run that was interrupted continues
    from its last completed epoch when started again with the same settings, and the backup is
    removed once training ends. With `tensorboard_dir`, TensorBoard logs go there: the losses, and
    the model's output on the `preview` images every few epochs. Returns the Keras history (loss
    per epoch; after a resume, only the epochs run this time) and the training time in seconds.
    """
    note_if_few_steps(math.ceil(len(inputs) / batch_size), epochs)
    callbacks = [keras.callbacks.TerminateOnNaN(), *(callbacks or [])]
    if resume_dir is not None:
        if (resume_dir / "latest.weights.h5").exists():
            print(f"resuming from the backup in {resume_dir}")
        callbacks.append(keras.callbacks.BackupAndRestore(str(resume_dir)))
    if tensorboard_dir is not None:
        check_tensorboard(True)
        callbacks.append(keras.callbacks.TensorBoard(log_dir=str(tensorboard_dir)))
        if preview is not None:
            callbacks.append(PreviewImages(tensorboard_dir / "images", preview))
    started = time.perf_counter()
    history = model.fit(
        shuffled_batches(
            inputs, targets, batch_size, seed=random.randrange(2**31)
        ),  # seeded from SEED
        epochs=epochs,
        steps_per_epoch=math.ceil(len(inputs) / batch_size),
        shuffle=False,  # the batches are shuffled already
        validation_data=validation,
        validation_batch_size=1000,
        callbacks=callbacks,
        verbose=progress_verbosity(),
    )
    seconds = time.perf_counter() - started
    if resume_dir is not None:
        shutil.rmtree(resume_dir, ignore_errors=True)
        with contextlib.suppress(OSError):
            resume_dir.parent.rmdir()  # only if no other backup is left in it
    check_finite(history.history)
    return history.history, seconds


def check_tensorboard(wanted: bool) -> None:
    """TensorBoard logs are written by TensorFlow: say so in one line where it is missing."""
    if wanted and not tensorflow_installed():
        raise SettingError(
            "TENSORBOARD=True: TensorBoard logs are written with TensorFlow, which is not "
            "installed here "
            "(pip install -r requirements.txt)"
        )


def backup_folder(out: Path, settings: dict[str, Any], stage: str) -> Path:
    """Where the backup of one training stage lives: inside the output folder, under a name that
    changes with any setting (but the output folder), so a backup is only ever resumed by a run
    with the same settings."""
    same = {k: v for k, v in settings.items() if k != "OUTPUT_DIR"}
    key = hashlib.sha1(json.dumps(same, sort_keys=True, default=str).encode()).hexdigest()[:10]
    return out / ".resume" / f"{stage}-{key}"


class PreviewImages(keras.callbacks.Callback):
    """Write the inputs and the model's outputs on a few fixed images to TensorBoard, every
    `every` epochs."""

    def __init__(self, log_dir: Path, images: np.ndarray, every: int = 2) -> None:
        import tensorflow as tf  # noqa: PLC0415  (TensorBoard's writer)

        super().__init__()
        self.images = images[:8]
        self.every = every
        self.summary = tf.summary
        self.writer = tf.summary.create_file_writer(str(log_dir))

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if epoch % self.every and epoch + 1 != self.params.get("epochs"):
            return
        outputs = self.model.predict(self.images, verbose=0)
        with self.writer.as_default():
            self.summary.image("input", self.images[..., None], step=epoch + 1, max_outputs=8)
            self.summary.image("output", outputs[..., None], step=epoch + 1, max_outputs=8)
        self.writer.flush()


def check_finite(history: dict[str, list[float]]) -> None:
    """Raise TrainingError if the last loss of a Keras history is NaN or infinite."""
    losses = history.get("loss") or [math.nan]
    if not math.isfinite(losses[-1]):
        raise TrainingError(
            f"the training loss became {losses[-1]} after {len(losses)} epoch(s); nothing was "
            "saved. "
            "Try a smaller LEARNING_RATE."
        )
