"""Drawing a few labelled examples, as many of each class: `balanced_subset` draws them, and
`balanced_subset_problem` says beforehand why a size cannot be drawn from the labels at hand."""

from __future__ import annotations

from common.errors import SettingError

import numpy as np


def balanced_subset_problem(labels: np.ndarray, n: int, classes: int = 10) -> str | None:
    """Why `n` examples, n/classes of each class, cannot be drawn from `labels` (None: they can)."""
    if n % classes:
        return f"not a multiple of {classes}, the number of classes"
    per_class = n // classes
    counts = np.bincount(labels, minlength=classes)[:classes]
    if n > len(labels):
        return f"more than the {len(labels):,} labelled images"
    if counts.min() < per_class:
        scarce = int(counts.argmin())
        return f"{per_class} of each class are needed, and class {scarce} has only {counts[scarce]}"
    return None


def balanced_subset(labels: np.ndarray, n: int, seed: int, classes: int = 10) -> np.ndarray:
    """Indices of `n` examples, n/classes of each class, drawn at random (sorted)."""
    problem = balanced_subset_problem(labels, n, classes)
    if problem is not None:
        raise SettingError(f"{n} labelled images: {problem}")
    per_class = n // classes
    rng = np.random.default_rng(seed)
    chosen = [
        rng.choice(np.flatnonzero(labels == label), per_class, replace=False)
        for label in range(classes)
    ]
    return np.sort(np.concatenate(chosen))
