"""Training batches for `model.fit`.

`Batches(draw, steps, batch_size, seed)` is an epoch of `steps` batches, batch number `step` of
epoch `epoch` being `draw(rng, batch_size)` with a NumPy generator seeded by (seed, epoch, step):
new batches every epoch, the same ones on every run with the same seed, on every backend. `draw`
returns what `fit` takes from a batch: (inputs, targets). Chapter 05 draws a few labelled images
this way, chapter 09 scenes it makes on the fly.

`shuffled_batches(inputs, targets, batch_size, seed)` is every training image once an epoch, in a
new order every epoch: what `fit(inputs, targets, shuffle=True)` does, made faster. Under
TensorFlow it is a `tf.data` pipeline, which TensorFlow reads faster than Keras' own handling of
arrays; under JAX and PyTorch a `PyDataset` of NumPy slices, which they read faster in turn.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from common.devices import backend

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


class ShuffledPasses(keras.utils.PyDataset):
    """Every example once an epoch, in batches, in a new random order every epoch."""

    def __init__(self, inputs: Any, targets: Any, batch_size: int, seed: int):
        super().__init__()
        self.inputs = inputs
        self.targets = targets
        self.batch_size = batch_size
        self.rng = np.random.default_rng(seed)
        self.order = self.rng.permutation(_length(inputs))

    def __len__(self) -> int:
        return -(-len(self.order) // self.batch_size)  # batches an epoch, the last one smaller

    def __getitem__(self, step: int) -> tuple[Any, Any]:
        chosen = np.sort(self.order[step * self.batch_size : (step + 1) * self.batch_size])
        return _take(self.inputs, chosen), _take(self.targets, chosen)

    def on_epoch_end(self) -> None:
        self.order = self.rng.permutation(len(self.order))


def _length(arrays: Any) -> int:
    return len(next(iter(arrays.values()))) if isinstance(arrays, dict) else len(arrays)


def _take(arrays: Any, chosen: np.ndarray) -> Any:
    if isinstance(arrays, dict):
        return {name: array[chosen] for name, array in arrays.items()}
    return arrays[chosen]


def shuffled_batches(inputs: Any, targets: Any, batch_size: int, seed: int) -> Any:
    """`inputs` (an array) and `targets` (an array, or a dict of arrays for a model of several
    outputs) in batches of `batch_size`, every example once an epoch, reshuffled every epoch."""
    if backend() != "tensorflow":
        return ShuffledPasses(inputs, targets, batch_size, seed)
    import tensorflow as tf  # noqa: PLC0415

    # an endless stream, each pass over the examples in a new order: `fit` takes an epoch's worth of
    # batches at a time (steps_per_epoch), all full, the last of a pass filled from the next one
    if targets is inputs:  # an autoencoder's: the batch is its own target, held once in memory
        examples = tf.data.Dataset.from_tensor_slices(inputs)
        stream = examples.shuffle(len(inputs), seed=seed, reshuffle_each_iteration=True).repeat()
        pairs = stream.batch(batch_size).map(lambda batch: (batch, batch))
    else:
        examples = tf.data.Dataset.from_tensor_slices((inputs, targets))
        stream = examples.shuffle(len(inputs), seed=seed, reshuffle_each_iteration=True).repeat()
        pairs = stream.batch(batch_size)
    return pairs.prefetch(tf.data.AUTOTUNE)
