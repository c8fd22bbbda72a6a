"""Classical denoisers a practitioner would reach for, each with one parameter to choose.

- median filter (SciPy), window size;
- Gaussian blur (SciPy), standard deviation in pixels;
- total-variation denoising (scikit-image, Chambolle), weight;
- non-local means (scikit-image), filtering strength h.

`tune` picks a denoiser's parameter on held-out corrupted images (never the test set), by mean
PSNR against their clean versions; the `Tuned` denoiser it returns applies that parameter to
other images. `tune_all` does it for all four.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from common.metrics import psnr_per_image

import numpy as np
from scipy import ndimage
from skimage.restoration import denoise_nl_means, denoise_tv_chambolle


def median(images: np.ndarray, size: float) -> np.ndarray:
    return ndimage.median_filter(images, size=(1, int(size), int(size)), mode="constant")


def gaussian_blur(images: np.ndarray, sigma: float) -> np.ndarray:
    return ndimage.gaussian_filter(images, sigma=(0, sigma, sigma), mode="constant")


def total_variation(images: np.ndarray, weight: float) -> np.ndarray:
    # channel_axis=0: each image is denoised on its own
    return denoise_tv_chambolle(images, weight=weight, channel_axis=0).astype(np.float32)


def non_local_means(images: np.ndarray, h: float) -> np.ndarray:
    # one image at a time (scikit-image would treat a stack as one 3-D image); the work runs outside
    # Python's lock, so threads share it over the cores and the result is the same
    def one(image: np.ndarray) -> np.ndarray:
        return denoise_nl_means(image, h=h, patch_size=3, patch_distance=4, fast_mode=True)

    with ThreadPoolExecutor(os.cpu_count() or 1) as pool:
        return np.stack(list(pool.map(one, images, chunksize=64))).astype(np.float32)


@dataclass(frozen=True)
class Denoiser:
    name: str
    parameter: str
    candidates: tuple[float, ...]
    apply: Callable[[np.ndarray, float], np.ndarray]


DENOISERS = (
    Denoiser("median filter", "size", (2, 3, 4, 5), median),
    Denoiser("Gaussian blur", "sigma", (0.5, 0.7, 1.0, 1.4, 2.0), gaussian_blur),
    Denoiser("total variation", "weight", (0.02, 0.05, 0.1, 0.2, 0.4, 0.8), total_variation),
    Denoiser("non-local means", "h", (0.05, 0.1, 0.2, 0.3, 0.5, 0.8), non_local_means),
)


def named(name: str) -> Denoiser:
    """One of DENOISERS by its name, e.g. `named("median filter")`."""
    return next(d for d in DENOISERS if d.name == name)


@dataclass
class Tuned:
    denoiser: Denoiser
    value: float  # the chosen parameter
    held_out_psnr_db: float

    @property
    def label(self) -> str:
        """Name and chosen parameter, e.g. "median filter (size 3)"."""
        return f"{self.denoiser.name} ({self.denoiser.parameter} {self.value:g})"

    def __call__(self, images: np.ndarray) -> np.ndarray:
        return np.clip(self.denoiser.apply(images, self.value), 0, 1).astype(np.float32)


def tune(denoiser: Denoiser, noisy: np.ndarray, clean: np.ndarray) -> Tuned:
    """Choose the parameter with the best mean PSNR on held-out (noisy, clean) pairs."""
    scores = [
        float(psnr_per_image(clean, np.clip(denoiser.apply(noisy, v), 0, 1)).mean())
        for v in denoiser.candidates
    ]
    best = int(np.argmax(scores))
    return Tuned(denoiser, denoiser.candidates[best], scores[best])


def tune_all(noisy: np.ndarray, clean: np.ndarray) -> list[Tuned]:
    return [tune(d, noisy, clean) for d in DENOISERS]
