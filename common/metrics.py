"""Image-quality figures over a whole test set: per-image MSE, PSNR and SSIM, averaged; the
ROC curve and its area (AUC) for anomaly scores; and the Frechet distance between two sets of
feature vectors.

Images are float arrays in [0, 1] of shape (N, 28, 28) (or (N, 784), reshaped). PSNR uses a data
range of 1.0 and is computed per image, then averaged over the images, as is SSIM, which is
scikit-image's `structural_similarity` with its defaults (7x7 window).
"""

from __future__ import annotations

import warnings

import numpy as np
import scipy.linalg
from scipy.ndimage import uniform_filter

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


def ssim_per_image(reference: np.ndarray, estimate: np.ndarray, chunk: int = 2000) -> np.ndarray:
    """SSIM of each image (data range 1.0), shape (N,): scikit-image's `structural_similarity`
    with its defaults (a 7x7 uniform window, sample covariances, K1 = 0.01, K2 = 0.03, the
    borders the window does not fit cropped), computed for a whole stack of images at once
    instead of one call per image."""
    reference = np.asarray(reference, dtype=np.float64)
    side = int(round(np.sqrt(reference[0].size)))
    reference = reference.reshape(len(reference), side, side)
    estimate = np.asarray(estimate, dtype=np.float64).reshape(reference.shape)
    return np.concatenate(
        [
            _ssim(reference[i : i + chunk], estimate[i : i + chunk])
            for i in range(0, len(reference), chunk)
        ]
    )


def _ssim(
    x: np.ndarray, y: np.ndarray, win: int = 7, k1: float = 0.01, k2: float = 0.03
) -> np.ndarray:
    def mean(a: np.ndarray) -> np.ndarray:  # the window's mean around every pixel, image by image
        return uniform_filter(a, size=(1, win, win))

    cov_norm = win**2 / (win**2 - 1)  # sample (not population) covariances, as scikit-image
    ux = mean(x)
    uy = mean(y)
    vx = cov_norm * (mean(x * x) - ux * ux)
    vy = cov_norm * (mean(y * y) - uy * uy)
    vxy = cov_norm * (mean(x * y) - ux * uy)
    c1 = k1**2  # (K * data range)^2, with a data range of 1
    c2 = k2**2
    s = (2 * ux * uy + c1) * (2 * vxy + c2) / ((ux**2 + uy**2 + c1) * (vx + vy + c2))
    pad = (win - 1) // 2
    return s[:, pad:-pad, pad:-pad].mean(axis=(1, 2))


def image_quality(reference: np.ndarray, estimate: np.ndarray) -> dict[str, float]:
    """Average MSE, PSNR (dB) and SSIM of `estimate` against `reference` over all images."""
    return {
        "mse": float(mse_per_image(reference, estimate).mean()),
        "psnr_db": float(psnr_per_image(reference, estimate).mean()),
        "ssim": float(ssim_per_image(reference, estimate).mean()),
    }


def roc_auc(normal_scores: np.ndarray, anomaly_scores: np.ndarray) -> float:
    """Area under the ROC curve of a score that should be higher for anomalies: the probability
    that a random anomaly scores higher than a random normal example, ties counting one half.
    This is the Mann-Whitney U statistic of the anomalies divided by the number of pairs."""
    from scipy.stats import rankdata  # noqa: PLC0415  (a slow import, for chapter 07 alone)

    normal = np.asarray(normal_scores, dtype=np.float64).ravel()
    anomalies = np.asarray(anomaly_scores, dtype=np.float64).ravel()
    if len(normal) == 0 or len(anomalies) == 0:
        raise ValueError("roc_auc needs at least one normal and one anomalous score")
    ranks = rankdata(np.concatenate([anomalies, normal]))  # tied scores share their mean rank
    u = ranks[: len(anomalies)].sum() - len(anomalies) * (len(anomalies) + 1) / 2
    return float(u / (len(anomalies) * len(normal)))


def roc_curve(
    normal_scores: np.ndarray, anomaly_scores: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The ROC curve of a score that should be higher for anomalies: for each distinct score t
    (from the highest down), the fraction of normal examples flagged (score >= t, the false
    positive rate) and of anomalies caught (the true positive rate). Returns (false positive
    rates, true positive rates, thresholds), starting at (0, 0) with an infinite threshold and
    ending at (1, 1); the trapezoids under it add up to `roc_auc`."""
    normal = np.asarray(normal_scores, dtype=np.float64).ravel()
    anomalies = np.asarray(anomaly_scores, dtype=np.float64).ravel()
    thresholds = np.unique(np.concatenate([normal, anomalies]))[::-1]
    normal_sorted = np.sort(normal)
    anomalies_sorted = np.sort(anomalies)
    flagged = len(normal) - np.searchsorted(normal_sorted, thresholds, side="left")
    caught = len(anomalies) - np.searchsorted(anomalies_sorted, thresholds, side="left")
    fpr = np.concatenate([[0.0], flagged / len(normal)])
    tpr = np.concatenate([[0.0], caught / len(anomalies)])
    return fpr, tpr, np.concatenate([[np.inf], thresholds])


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """The Frechet distance between normal distributions fitted to the rows of `a` and of `b` (their
    means m and covariance matrices C): |m_a - m_b|^2 + trace(C_a + C_b - 2 (C_a C_b)^(1/2)), the
    squared distance of the means plus the difference of the spreads (Heusel et al. 2017)."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    c_a = np.cov(a, rowvar=False)
    c_b = np.cov(b, rowvar=False)
    gap = a.mean(axis=0) - b.mean(axis=0)
    # features that never vary make C singular: its root is still fine
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", scipy.linalg.LinAlgWarning)
        root = scipy.linalg.sqrtm(c_a @ c_b).real
    return float(gap @ gap + np.trace(c_a + c_b - 2 * root))
