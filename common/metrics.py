"""Image-quality figures over a whole test set: per-image MSE, PSNR and SSIM, averaged.

Images are float arrays in [0, 1] of shape (N, 28, 28) (or (N, 784), reshaped). PSNR uses a data
range of 1.0 and is computed per image, then averaged over the images, as is SSIM, which is
scikit-image's `structural_similarity` with its defaults (7x7 window).
"""

from __future__ import annotations

import numpy as np
from skimage.metrics import structural_similarity

PSNR_CAP_DB = 100.0  # a perfect reconstruction has infinite PSNR; it counts as this many dB


def _pair(reference: np.ndarray, estimate: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    reference = np.asarray(reference, dtype=np.float64)
    estimate = np.asarray(estimate, dtype=np.float64).reshape(reference.shape)
    return reference.reshape(len(reference), -1), estimate.reshape(len(reference), -1)


def mse_per_image(reference: np.ndarray, estimate: np.ndarray) -> np.ndarray:
    """Mean squared error of each image, shape (N,)."""
    reference, estimate = _pair(reference, estimate)
    return np.mean((reference - estimate) ** 2, axis=1)


def psnr_per_image(reference: np.ndarray, estimate: np.ndarray) -> np.ndarray:
    """PSNR in dB of each image with data range 1.0, capped at PSNR_CAP_DB for exact copies."""
    mse = mse_per_image(reference, estimate)
    with np.errstate(divide="ignore"):
        return np.minimum(10 * np.log10(1.0 / mse), PSNR_CAP_DB)


def ssim_per_image(reference: np.ndarray, estimate: np.ndarray) -> np.ndarray:
    """scikit-image SSIM of each image (data range 1.0), shape (N,)."""
    reference = np.asarray(reference, dtype=np.float64)
    side = int(round(np.sqrt(reference[0].size)))
    reference = reference.reshape(len(reference), side, side)
    estimate = np.asarray(estimate, dtype=np.float64).reshape(reference.shape)
    return np.array([structural_similarity(r, e, data_range=1.0) for r, e in zip(reference, estimate)])


def image_quality(reference: np.ndarray, estimate: np.ndarray) -> dict[str, float]:
    """Average MSE, PSNR (dB) and SSIM of `estimate` against `reference` over all images."""
    return {
        "mse": float(mse_per_image(reference, estimate).mean()),
        "psnr_db": float(psnr_per_image(reference, estimate).mean()),
        "ssim": float(ssim_per_image(reference, estimate).mean()),
    }
