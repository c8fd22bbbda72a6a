"""Training batches for `model.fit`.

`Batches(draw, steps, batch_size, seed)` is an epoch of `steps` batches, batch number `step` of
epoch `epoch` being `draw(rng, batch_size)` with a NumPy generator seeded by (seed, epoch, step):
new batches every epoch, the same ones on every run with the same seed, on every backend. `draw`
returns what `fit` takes from a batch: (inputs, targets). Chapter 09 draws the scenes it makes on
the fly this way.

`shuffled_batches(inputs, targets, batch_size, seed)` is every training image once an epoch, in a
new order every epoch: what `fit(inputs, targets, shuffle=True)` does, made faster. Under
TensorFlow it is a `tf.data` pipeline, which TensorFlow reads faster than Keras' own handling of
arrays (and than a `PyDataset`: 2.4 times on chapter 05's classifier); under JAX and PyTorch a
`PyDataset` of NumPy slices, which they read faster in turn. With `steps`, an epoch is that many
batches, pass after pass over the examples (chapter 05 trains on a few labelled images this way).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from common.devices import backend

import keras
import numpy as np


class Batches(keras.utils.PyDataset):
    def __init__(
        self,
        draw: Callable[[np.random.Generator, int], Any],
        steps: int,
        batch_size: int,
        seed: int,
    ):
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


class ShuffledPasses(keras.utils.PyDataset):
    """Passes over the examples, each in a new random order, in batches (a pass's last one
    smaller): an epoch is `steps` batches (None: one pass)."""

    def __init__(
        self, inputs: Any, targets: Any, batch_size: int, seed: int, steps: int | None = None
    ):
        super().__init__()
        self.inputs = inputs
        self.targets = targets
        self.batch_size = batch_size
        self.seed = seed
        self.examples = _length(inputs)
        self.batches_a_pass = math.ceil(self.examples / batch_size)
        self.steps = steps or self.batches_a_pass
        self.epoch = 0
        self.order_of = {}  # the order of each pass of this epoch, drawn when first needed

    def __len__(self) -> int:
        return self.steps

    def __getitem__(self, step: int) -> tuple[Any, Any]:
        pass_number, batch = divmod(step, self.batches_a_pass)
        if pass_number not in self.order_of:
            rng = np.random.default_rng((self.seed, self.epoch, pass_number))
            self.order_of[pass_number] = rng.permutation(self.examples)
        order = self.order_of[pass_number]
        chosen = np.sort(order[batch * self.batch_size : (batch + 1) * self.batch_size])
        return _take(self.inputs, chosen), _take(self.targets, chosen)

    def on_epoch_end(self) -> None:
        self.epoch += 1
        self.order_of = {}


def _length(arrays: Any) -> int:
    return len(next(iter(arrays.values()))) if isinstance(arrays, dict) else len(arrays)


def _take(arrays: Any, chosen: np.ndarray) -> Any:
    if isinstance(arrays, dict):
        return {name: array[chosen] for name, array in arrays.items()}
    return arrays[chosen]


def shuffled_batches(
    inputs: Any, targets: Any, batch_size: int, seed: int, steps: int | None = None
) -> Any:
    """`inputs` (an array) and `targets` (an array, or a dict of arrays for a model of several
    outputs) in batches of `batch_size`, every example once a pass, reshuffled every pass. Give
    `fit` the batches an epoch as `steps_per_epoch`: one pass, ceil(N / batch_size), or `steps`."""
    if backend() != "tensorflow":
        return ShuffledPasses(inputs, targets, batch_size, seed, steps)
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
    # two batches made ahead of the training step, and no autotuning: tf.data's autotuner optimizes
    # in a thread that `fit` waited for at its end, up to a minute on a busy 2-core CPU
    options = tf.data.Options()
    options.autotune.enabled = False
    return pairs.prefetch(2).with_options(options)
