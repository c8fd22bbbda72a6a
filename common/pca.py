"""PCA, the linear baseline that every chapter which compresses images sets its autoencoder against.

Baldi & Hornik (1989): a linear autoencoder with a code of k numbers, trained on squared error,
learns the same subspace as the top k principal directions. So PCA with k components is what an
autoencoder with a k-number code must beat to have learnt anything a straight line cannot.
"""

from __future__ import annotations

import numpy as np


def pca(x_train: np.ndarray, n_components: int) -> tuple[np.ndarray, np.ndarray]:
    """The mean image and the top `n_components` principal directions (rows) of the training
    images."""
    x = x_train.reshape(len(x_train), -1).astype(np.float64)
    mean = x.mean(axis=0)
    _, eigenvectors = np.linalg.eigh(np.cov(x - mean, rowvar=False))  # ascending eigenvalues
    return mean, eigenvectors[:, ::-1][:, :n_components].T


def pca_reconstruct(x: np.ndarray, mean: np.ndarray, components: np.ndarray) -> np.ndarray:
    """Project the images `x` onto the principal directions and back, clipped to valid pixel values
    [0, 1]."""
    flat = x.reshape(len(x), -1) - mean
    return (
        np.clip(flat @ components.T @ components + mean, 0, 1).reshape(x.shape).astype(np.float32)
    )
