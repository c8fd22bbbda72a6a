"""Training loop glue shared by every script: fit with a fresh corruption per batch, one log line
per epoch when the output is not a terminal, a clear stop on a NaN loss, and the time it took."""

from __future__ import annotations

import math
import sys
import time

import keras
import numpy as np

from common.corruption import Corruption, denoising_batches
from common.errors import TrainingError


def progress_verbosity() -> int:
    """Keras progress bar on a terminal; one line per epoch in logs and pipes."""
    return 1 if sys.stdout.isatty() else 2


def train_autoencoder(
    model: keras.Model,
    x_train: np.ndarray,
    corruption: Corruption | None,
    *,
    epochs: int,
    batch_size: int,
    seed: int,
    validation: tuple[np.ndarray, np.ndarray] | None = None,
    callbacks: list[keras.callbacks.Callback] | None = None,
) -> tuple[dict[str, list[float]], float]:
    """Train `model` to map corrupted images to clean ones (clean to clean when `corruption` is
    None), drawing a fresh corruption for every batch of every epoch.

    Returns the Keras history (loss per epoch) and the training time in seconds.
    """
    batches, steps = denoising_batches(x_train, corruption, batch_size, seed)
    started = time.perf_counter()
    history = model.fit(
        batches,
        epochs=epochs,
        steps_per_epoch=steps,
        validation_data=validation,
        validation_batch_size=1000,
        callbacks=[keras.callbacks.TerminateOnNaN(), *(callbacks or [])],
        shuffle=False,  # the batches are already shuffled
        verbose=progress_verbosity(),
    )
    seconds = time.perf_counter() - started
    check_finite(history.history)
    return history.history, seconds


def check_finite(history: dict[str, list[float]]) -> None:
    """Raise TrainingError if the last loss of a Keras history is NaN or infinite."""
    losses = history.get("loss") or [math.nan]
    if not math.isfinite(losses[-1]):
        raise TrainingError(
            f"the training loss became {losses[-1]} after {len(losses)} epoch(s); nothing was saved. "
            "Try a smaller LEARNING_RATE."
        )
