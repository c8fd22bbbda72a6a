"""The three corruption processes of the collection (Vincent et al. 2010, section 4.2).

- additive Gaussian noise: x + N(0, std^2), clipped back to [0, 1];
- masking noise: a random fraction of the pixels set to 0;
- salt-and-pepper noise: a random fraction of the pixels set to 0 or 1 (1 with probability
  `salt_ratio`, 0 otherwise).

Each is written twice, for its two uses:

- `Corruption("masking", 0.5)(images, seed)` corrupts a fixed set of images once, in NumPy: the
  same seed gives the same corruption on every run and every backend, so every run is scored on
  the same corrupted test images;
- `Corruption("masking", 0.5).layer(seed)` is a Keras layer that corrupts its input while the
  model trains, a fresh draw for every batch, and passes it through untouched otherwise, as
  Keras' own `Dropout` and `GaussianNoise` do. Put in front of a model, it makes the denoising
  criterion: `keras.Sequential([noise.layer(SEED), denoiser])` trains the denoiser on corrupted
  inputs, computed with `keras.ops` and Keras' random draws on whatever backend and device the
  model runs on (`common.devices.random_uniform`: fast under TensorFlow's XLA too).

`LevelRange("salt_and_pepper", 0.0, 0.9)` is one process at a level drawn afresh for every image.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

from common.devices import random_normal, random_uniform
from common.errors import SettingError

import keras
import numpy as np
from keras import ops

KINDS = ("gaussian", "masking", "salt_and_pepper")


def check_std(std: float, what: str = "the noise standard deviation") -> None:
    if (
        isinstance(std, bool)
        or not isinstance(std, (int, float))
        or not math.isfinite(std)
        or std < 0
    ):
        raise SettingError(f"{what} {std!r}: must be a finite number, 0 or more")


def check_fraction(fraction: float, what: str = "the fraction of pixels hit") -> None:
    if (
        isinstance(fraction, bool)
        or not isinstance(fraction, (int, float))
        or not 0 <= fraction <= 1
    ):
        raise SettingError(f"{what} {fraction!r}: must lie between 0 and 1")


def _float_images(x: Any) -> np.ndarray:
    x = np.asarray(x)
    if x.dtype.kind != "f":
        raise ValueError(f"corruption expects float images in [0, 1], got dtype {x.dtype}")
    return x


# The processes on a fixed set of images, in NumPy. The level is a number, or an array that
# broadcasts against the images (one level per image, for `LevelRange`).
def _gaussian(x: np.ndarray, std: Any, rng: np.random.Generator) -> np.ndarray:
    noise = rng.standard_normal(x.shape)
    return np.clip(x + std * noise, 0, 1).astype(x.dtype)


def _masking(x: np.ndarray, fraction: Any, rng: np.random.Generator) -> np.ndarray:
    hit = rng.random(x.shape) < fraction
    return np.where(hit, 0, x).astype(x.dtype)


def _salt_and_pepper(
    x: np.ndarray, fraction: Any, salt_ratio: float, rng: np.random.Generator
) -> np.ndarray:
    hit = rng.random(x.shape) < fraction
    salt = rng.random(x.shape) < salt_ratio
    return np.where(hit, salt, x).astype(x.dtype)


def gaussian_noise(x: Any, std: float, seed: Any) -> np.ndarray:
    """Add N(0, std^2) to every pixel and clip to [0, 1]. `seed`: an int or a tuple of ints."""
    check_std(std)
    x = _float_images(x)
    if std == 0:
        return x.copy()  # exactly the input (no round trip through the arithmetic)
    return _gaussian(x, std, np.random.default_rng(seed))


def masking_noise(x: Any, fraction: float, seed: Any) -> np.ndarray:
    """Set a random `fraction` of the pixels to 0 (each pixel independently)."""
    check_fraction(fraction)
    return _masking(_float_images(x), fraction, np.random.default_rng(seed))


def salt_and_pepper_noise(
    x: Any, fraction: float, seed: Any, salt_ratio: float = 0.5
) -> np.ndarray:
    """Set a random `fraction` of the pixels to 1 (probability `salt_ratio`) or 0."""
    check_fraction(fraction)
    check_fraction(salt_ratio, "the share of salt among the pixels hit")
    return _salt_and_pepper(_float_images(x), fraction, salt_ratio, np.random.default_rng(seed))


class Corrupt(keras.layers.Layer):
    """A corruption process as a layer: while the model trains, every batch gets a fresh draw;
    otherwise (predict, evaluate, validation) the input passes through untouched. The level is
    `low` for every image, or drawn for each image uniformly between `low` and `high`."""

    def __init__(
        self,
        kind: str,
        low: float,
        high: float | None = None,
        salt_ratio: float = 0.5,
        seed=None,
        **kw,
    ):
        super().__init__(**kw)
        self.kind = kind
        self.low = low
        self.high = low if high is None else high
        self.salt_ratio = salt_ratio
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, x, training=False):
        if not training:
            return x
        level = self.low
        if self.high != self.low:  # one level per image, broadcast over its pixels
            per_image = (ops.shape(x)[0],) + (1,) * (len(x.shape) - 1)
            level = random_uniform(per_image, self.seed_generator, x.dtype, self.low, self.high)
        if self.kind == "gaussian":
            noise = random_normal(ops.shape(x), self.seed_generator, x.dtype)
            return ops.clip(x + level * noise, 0.0, 1.0)
        hit = random_uniform(ops.shape(x), self.seed_generator, x.dtype) < level
        if self.kind == "masking":
            return ops.where(hit, ops.zeros_like(x), x)
        salt = random_uniform(ops.shape(x), self.seed_generator, x.dtype) < self.salt_ratio
        return ops.where(hit, ops.cast(salt, x.dtype), x)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self) -> dict[str, Any]:
        return super().get_config() | {
            "kind": self.kind,
            "low": self.low,
            "high": self.high,
            "salt_ratio": self.salt_ratio,
            "seed": self.seed,
        }


@dataclass(frozen=True)
class Corruption:
    """One corruption process at one level: `Corruption("masking", 0.5)(images, seed)` for a fixed
    set, `Corruption("masking", 0.5).layer(seed)` for training.

    `level` is the standard deviation for "gaussian" and the fraction of pixels for the others.
    """

    kind: str
    level: float
    salt_ratio: float = 0.5

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise SettingError(
                f"unknown corruption {self.kind!r}: choose one of {', '.join(KINDS)}"
            )
        if self.kind == "gaussian":
            check_std(self.level)
        else:
            check_fraction(self.level)
        check_fraction(self.salt_ratio, "the share of salt among the pixels hit")

    def __call__(self, x: Any, seed: Any) -> np.ndarray:
        if self.kind == "gaussian":
            return gaussian_noise(x, self.level, seed)
        if self.kind == "masking":
            return masking_noise(x, self.level, seed)
        return salt_and_pepper_noise(x, self.level, seed, self.salt_ratio)

    def layer(self, seed: int | None = None) -> Corrupt:
        """This corruption as a layer, active only while a model trains."""
        return Corrupt(
            self.kind,
            self.level,
            salt_ratio=self.salt_ratio,
            seed=seed,
            name=f"{self.kind}_corruption",
        )

    def at(self, level: float) -> Corruption:
        """The same process at another level (for sweeps)."""
        return replace(self, level=level)

    def describe(self) -> str:
        if self.kind == "gaussian":
            return f"Gaussian noise, std {self.level:g}"
        if self.kind == "masking":
            return f"masking noise, {self.level:.0%} of pixels set to 0"
        share = f"{self.level:.0%} of pixels set to 0 or 1 ({self.salt_ratio:.0%} to 1)"
        return f"salt-and-pepper noise, {share}"

    def as_dict(self) -> dict[str, Any]:
        params: dict[str, Any] = (
            {"std": self.level} if self.kind == "gaussian" else {"fraction": self.level}
        )
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
            raise SettingError(
                f"unknown corruption {self.kind!r}: choose one of {', '.join(KINDS)}"
            )
        for level in (self.low, self.high):
            if self.kind == "gaussian":
                check_std(level, "a level of the range")
            else:
                check_fraction(level, "a level of the range")
        check_fraction(self.salt_ratio, "the share of salt among the pixels hit")
        if self.low > self.high:
            raise SettingError(
                f"the range ({self.low:g}, {self.high:g}): the lowest level must come first"
            )

    def __call__(self, x: Any, seed: Any) -> np.ndarray:
        x = _float_images(x)
        sequence = np.random.SeedSequence(seed)
        per_image = (len(x),) + (1,) * (x.ndim - 1)
        levels = np.random.default_rng(sequence.spawn(1)[0]).uniform(self.low, self.high, per_image)
        rng = np.random.default_rng(sequence)
        if self.kind == "gaussian":
            return _gaussian(x, levels, rng)
        if self.kind == "masking":
            return _masking(x, levels, rng)
        return _salt_and_pepper(x, levels, self.salt_ratio, rng)

    def layer(self, seed: int | None = None) -> Corrupt:
        """This corruption as a layer, active only while a model trains: a level for every image."""
        name = f"{self.kind}_range_corruption"
        return Corrupt(
            self.kind, self.low, self.high, salt_ratio=self.salt_ratio, seed=seed, name=name
        )

    def describe(self) -> str:
        what = {
            "gaussian": "standard deviation",
            "masking": "fraction masked",
            "salt_and_pepper": "fraction hit",
        }
        name = Corruption(self.kind, self.high, self.salt_ratio).describe().split(",")[0]
        return f"{name}, {what[self.kind]} drawn for each image from {self.low:g} to {self.high:g}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "type": self.kind,
            "low": self.low,
            "high": self.high,
            "salt_ratio": self.salt_ratio,
        }
