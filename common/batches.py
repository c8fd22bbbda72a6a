"""Training batches drawn afresh for every step, for `model.fit`.

`Batches(draw, steps, batch_size, seed)` is an epoch of `steps` batches, batch number `step` of
epoch `epoch` being `draw(rng, batch_size)` with a NumPy generator seeded by (seed, epoch, step):
new batches every epoch, the same ones on every run with the same seed, on every backend. `draw`
returns what `fit` takes from a batch: (inputs, targets). Chapter 05 draws a few labelled images
this way, chapter 09 scenes it makes on the fly.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import keras
import numpy as np


class Batches(keras.utils.PyDataset):
    def __init__(self, draw: Callable[[np.random.Generator, int], Any], steps: int, batch_size: int, seed: int):
        super().__init__()
        self.draw = draw
        self.steps = steps
        self.batch_size = batch_size
        self.seed = seed
        self.epoch = 0

    def __len__(self) -> int:
        return self.steps

    def __getitem__(self, step: int) -> Any:
        return self.draw(np.random.default_rng((self.seed, self.epoch, step)), self.batch_size)

    def on_epoch_end(self) -> None:
        self.epoch += 1


def random_batches(x: np.ndarray, y: np.ndarray, steps: int, batch_size: int, seed: int) -> Batches:
    """`steps` batches of `batch_size` (x, y) pairs, each drawn at random without replacement
    (the whole set, in a new order, when it holds no more than `batch_size`)."""
    size = min(batch_size, len(x))

    def draw(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
        chosen = rng.choice(len(x), size=n, replace=False)
        return x[chosen], y[chosen]

    return Batches(draw, steps, size, seed)
