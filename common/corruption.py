"""The three corruption processes of the collection (Vincent et al. 2010, section 4.2).

- additive Gaussian noise: x + N(0, std^2), clipped back to [0, 1];
- masking noise: a random fraction of the pixels set to 0;
- salt-and-pepper noise: a random fraction of the pixels set to 0 or 1 (1 with probability
  `salt_ratio`, 0 otherwise).

Each function takes a batch of images (NumPy array or tensor, any shape, float) and a `seed`, an
int or a pair of ints, and is a pure function of the two: the same seed gives the same corruption
on every run, a different seed a fresh one. They use TensorFlow's stateless random ops, so the same
code corrupts a test set once with a fixed seed and, inside a `tf.data` pipeline, draws a fresh
corruption for every training batch (`denoising_batches`). A NumPy input gives a NumPy output.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

from common.errors import SettingError

import numpy as np
import tensorflow as tf

KINDS = ("gaussian", "masking", "salt_and_pepper")
TEST_SEED = 2010  # the corrupted test set is the same on every run, whatever the training SEED


def _seed(seed: Any) -> tf.Tensor:
    seed = tf.convert_to_tensor(seed, dtype=tf.int64)
    return tf.stack([seed, tf.constant(0, tf.int64)]) if seed.shape.rank == 0 else seed


def _as_tensor(x: Any) -> tuple[tf.Tensor, bool]:
    """The images as a float tensor, and whether they came as a NumPy array."""
    if tf.is_tensor(x):
        return x, False
    x = np.asarray(x)
    if x.dtype.kind != "f":
        raise ValueError(f"corruption expects float images in [0, 1], got dtype {x.dtype}")
    return tf.convert_to_tensor(x), True


def _back(y: tf.Tensor, is_numpy: bool) -> Any:
    return y.numpy() if is_numpy else y


def check_std(std: float, name: str = "NOISE_STD") -> None:
    if isinstance(std, bool) or not isinstance(std, (int, float)) or not math.isfinite(std) or std < 0:
        raise SettingError(f"{name}={std!r}: the noise standard deviation must be a finite number >= 0")


def check_fraction(fraction: float, name: str = "NOISE_FRACTION") -> None:
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 <= fraction <= 1:
        raise SettingError(f"{name}={fraction!r}: a fraction of pixels must lie between 0 and 1")


def gaussian_noise(x: Any, std: float, seed: Any) -> Any:
    """Add N(0, std^2) to every pixel and clip to [0, 1]."""
    check_std(std)
    x, is_numpy = _as_tensor(x)
    if std == 0:
        return _back(x, is_numpy)  # exactly the input (no round trip through the arithmetic)
    return _back(_gaussian(x, std, _seed(seed)), is_numpy)


def masking_noise(x: Any, fraction: float, seed: Any) -> Any:
    """Set a random `fraction` of the pixels to 0 (each pixel independently)."""
    check_fraction(fraction)
    x, is_numpy = _as_tensor(x)
    return _back(_masking(x, fraction, _seed(seed)), is_numpy)


def salt_and_pepper_noise(x: Any, fraction: float, seed: Any, salt_ratio: float = 0.5) -> Any:
    """Set a random `fraction` of the pixels to 1 (probability `salt_ratio`) or 0."""
    check_fraction(fraction)
    check_fraction(salt_ratio, "SALT_RATIO")
    x, is_numpy = _as_tensor(x)
    return _back(_salt_and_pepper(x, fraction, _seed(seed), salt_ratio), is_numpy)


# The processes themselves, on a tensor; the level is a number, or a tensor that broadcasts
# against the images (one level per image, for `LevelRange`).
def _gaussian(x: tf.Tensor, std: Any, seed: tf.Tensor) -> tf.Tensor:
    noise = tf.random.stateless_normal(tf.shape(x), seed=seed, dtype=x.dtype)
    return tf.clip_by_value(x + noise * tf.cast(std, x.dtype), 0.0, 1.0)


def _masking(x: tf.Tensor, fraction: Any, seed: tf.Tensor) -> tf.Tensor:
    hit = tf.random.stateless_uniform(tf.shape(x), seed=seed, dtype=x.dtype) < tf.cast(fraction, x.dtype)
    return tf.where(hit, tf.zeros_like(x), x)


def _salt_and_pepper(x: tf.Tensor, fraction: Any, seed: tf.Tensor, salt_ratio: float) -> tf.Tensor:
    u = tf.random.stateless_uniform(tf.concat([[2], tf.shape(x)], 0), seed=seed, dtype=x.dtype)
    salt = tf.cast(u[1] < salt_ratio, x.dtype)
    return tf.where(u[0] < tf.cast(fraction, x.dtype), salt, x)


@dataclass(frozen=True)
class Corruption:
    """One corruption process at one level: `Corruption("masking", 0.5)(images, seed)`.

    `level` is the standard deviation for "gaussian" and the fraction of pixels for the others.
    """

    kind: str
    level: float
    salt_ratio: float = 0.5

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise SettingError(f"unknown corruption {self.kind!r}: choose one of {', '.join(KINDS)}")
        if self.kind == "gaussian":
            check_std(self.level)
        else:
            check_fraction(self.level)
        check_fraction(self.salt_ratio, "SALT_RATIO")

    def __call__(self, x: Any, seed: Any) -> Any:
        if self.kind == "gaussian":
            return gaussian_noise(x, self.level, seed)
        if self.kind == "masking":
            return masking_noise(x, self.level, seed)
        return salt_and_pepper_noise(x, self.level, seed, self.salt_ratio)

    def at(self, level: float) -> Corruption:
        """The same process at another level (for sweeps)."""
        return replace(self, level=level)

    def describe(self) -> str:
        if self.kind == "gaussian":
            return f"Gaussian noise, std {self.level:g}"
        if self.kind == "masking":
            return f"masking noise, {self.level:.0%} of pixels set to 0"
        return f"salt-and-pepper noise, {self.level:.0%} of pixels set to 0 or 1 ({self.salt_ratio:.0%} to 1)"

    def as_dict(self) -> dict[str, Any]:
        params: dict[str, Any] = {"std": self.level} if self.kind == "gaussian" else {"fraction": self.level}
        if self.kind == "salt_and_pepper":
            params["salt_ratio"] = self.salt_ratio
        return {"type": self.kind, **params}


@dataclass(frozen=True)
class LevelRange:
    """One corruption process at a level drawn afresh for every image, uniformly between `low` and
    `high`: `LevelRange("salt_and_pepper", 0.0, 0.9)(images, seed)`. A model trained on it has seen
    every level of the range, where one trained with `Corruption` has seen only one."""

    kind: str
    low: float
    high: float
    salt_ratio: float = 0.5

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise SettingError(f"unknown corruption {self.kind!r}: choose one of {', '.join(KINDS)}")
        for level in (self.low, self.high):
            check = check_std if self.kind == "gaussian" else check_fraction
            check(level, "TRAIN_RANGE")
        check_fraction(self.salt_ratio, "SALT_RATIO")
        if self.low > self.high:
            raise SettingError(f"TRAIN_RANGE=({self.low:g}, {self.high:g}): the lowest level must come first")

    def __call__(self, x: Any, seed: Any) -> Any:
        x, is_numpy = _as_tensor(x)
        seed = _seed(seed)
        per_image = tf.concat([tf.shape(x)[:1], tf.ones_like(tf.shape(x)[1:])], 0)  # (N, 1, 1)
        level_seed = tf.random.experimental.stateless_fold_in(seed, 1)
        levels = tf.random.stateless_uniform(per_image, level_seed, minval=self.low, maxval=self.high, dtype=x.dtype)
        if self.kind == "gaussian":
            y = _gaussian(x, levels, seed)
        elif self.kind == "masking":
            y = _masking(x, levels, seed)
        else:
            y = _salt_and_pepper(x, levels, seed, self.salt_ratio)
        return _back(y, is_numpy)

    def describe(self) -> str:
        what = {"gaussian": "standard deviation", "masking": "fraction masked", "salt_and_pepper": "fraction hit"}
        name = Corruption(self.kind, self.high, self.salt_ratio).describe().split(",")[0]
        return f"{name}, {what[self.kind]} drawn for each image from {self.low:g} to {self.high:g}"

    def as_dict(self) -> dict[str, Any]:
        return {"type": self.kind, "low": self.low, "high": self.high, "salt_ratio": self.salt_ratio}


def denoising_batches(
    x: np.ndarray, corruption: Corruption | LevelRange | None, batch_size: int, seed: int
) -> tuple[tf.data.Dataset, int]:
    """An endless, shuffled stream of (corrupted batch, clean batch) pairs, and the number of
    batches in one epoch (for `fit(..., steps_per_epoch=...)`).

    Batch number i is corrupted with the seed (seed, i), so every batch of every epoch gets a
    fresh corruption, and the whole stream is the same on every run with the same seed. With
    `corruption=None` the input is the clean batch itself (a plain autoencoder).
    """
    steps = math.ceil(len(x) / batch_size)
    batches = (
        tf.data.Dataset.from_tensor_slices(x)
        .shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
        .repeat()
        .batch(batch_size)
    )
    numbered = tf.data.Dataset.zip(batches, tf.data.Dataset.counter())

    def pair(clean: tf.Tensor, i: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        if corruption is None:
            return clean, clean
        return corruption(clean, tf.stack([tf.constant(seed, tf.int64), i])), clean

    return numbered.map(pair, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE), steps
