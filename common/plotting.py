"""Figures, saved as PNG files only (Matplotlib's Agg backend: no display needed).

Every function draws one figure, saves it atomically to `path` and returns the path.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from common.outputs import save_figure  # noqa: E402


def image_rows(path: str | Path, rows: dict[str, np.ndarray], n: int = 10, title: str = "") -> Path:
    """A grid with one labelled row per entry of `rows` (e.g. original / corrupted / output),
    showing the first `n` images of each."""
    n = min(n, *(len(images) for images in rows.values()))
    fig, axes = plt.subplots(len(rows), n, figsize=(1.1 * n + 1.2, 1.2 * len(rows) + 0.4), squeeze=False)
    for r, (label, images) in enumerate(rows.items()):
        images = np.asarray(images)
        side = int(round(np.sqrt(images[0].size)))
        for c in range(n):
            ax = axes[r, c]
            ax.imshow(images[c].reshape(side, side), cmap="gray", vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
        axes[r, 0].set_ylabel(label, rotation=0, ha="right", va="center", fontsize=10)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return save_figure(fig, path)


def loss_curves(path: str | Path, histories: dict[str, dict[str, list[float]]], ylabel: str = "loss") -> Path:
    """Training (solid) and validation (dashed) loss per epoch, one colour per model."""
    fig, ax = plt.subplots(figsize=(6.4, 4))
    for i, (label, history) in enumerate(histories.items()):
        colour = f"C{i}"
        epochs = np.arange(1, len(history["loss"]) + 1)
        ax.plot(epochs, history["loss"], color=colour, label=f"{label}: training")
        if history.get("val_loss"):
            ax.plot(epochs, history["val_loss"], "--", color=colour, label=f"{label}: validation")
    ax.set_xlabel("epoch")
    ax.set_ylabel(ylabel)
    ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    return save_figure(fig, path)


def code_scatter(
    path: str | Path,
    codes_2d: np.ndarray,
    labels: np.ndarray | None,
    class_names: list[str] | None = None,
    title: str = "",
) -> Path:
    """A 2-D view of codes (already projected to two dimensions), coloured by class when there
    are labels (one colour each for up to 10 classes, a colour scale beyond)."""
    fig, ax = plt.subplots(figsize=(6.4, 5.6))
    if labels is None:
        ax.scatter(codes_2d[:, 0], codes_2d[:, 1], s=3, alpha=0.5, color="0.3")
    else:
        classes = len(class_names) if class_names else int(labels.max()) + 1
        cmap = "tab10" if classes <= 10 else "viridis"
        points = ax.scatter(
            codes_2d[:, 0], codes_2d[:, 1], c=labels, cmap=cmap, s=3, alpha=0.7, vmin=-0.5, vmax=classes - 0.5
        )
        bar = fig.colorbar(points, ax=ax, ticks=range(classes) if classes <= 20 else None, label="class")
        if class_names and classes <= 20:
            bar.ax.set_yticklabels(class_names)
    ax.set_title(title)
    ax.set_xticks([])
    ax.set_yticks([])
    fig.tight_layout()
    return save_figure(fig, path)


def filter_grids(path: str | Path, weights: dict[str, np.ndarray], n: int = 64) -> Path:
    """Filters: each column of a (784, units) weight matrix shown as a 28x28 image, scaled to its
    own largest magnitude with zero as mid-grey (white: positive, black: negative); one panel per
    entry of `weights`."""
    cols = int(np.ceil(np.sqrt(n)))
    fig, panels = plt.subplots(1, len(weights), figsize=(4.2 * len(weights), 4.6), squeeze=False)
    for panel, (label, w) in zip(panels[0], weights.items()):
        w = np.asarray(w)[:, :n]
        side = int(round(np.sqrt(w.shape[0])))
        tiles = np.ones((cols * (side + 1) - 1, cols * (side + 1) - 1))
        for k in range(w.shape[1]):
            f = w[:, k].reshape(side, side)
            f = 0.5 + f / (2 * np.abs(f).max() + 1e-12)
            r, c = divmod(k, cols)
            tiles[r * (side + 1) : r * (side + 1) + side, c * (side + 1) : c * (side + 1) + side] = f
        panel.imshow(tiles, cmap="gray", vmin=0, vmax=1)
        panel.set_title(label)
        panel.axis("off")
    fig.tight_layout()
    return save_figure(fig, path)


def curves(
    path: str | Path,
    x: Sequence[float],
    series: dict[str, Sequence[float] | Sequence[Sequence[float]]],
    xlabel: str,
    ylabel: str,
    title: str = "",
    logx: bool = False,
    marker_at: float | None = None,
) -> Path:
    """Several y-series against one x (e.g. PSNR against noise level), with an optional
    vertical line (e.g. the level the model was trained at). A y may be several numbers (the
    runs of a repeated measurement): the line goes through their mean, and a band spans them."""
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    for label, y in series.items():
        runs = [np.atleast_1d(np.asarray(value, dtype=float)) for value in y]
        (line,) = ax.plot(x, [r.mean() for r in runs], marker="o", label=label)
        if any(len(r) > 1 for r in runs):
            ax.fill_between(x, [r.min() for r in runs], [r.max() for r in runs], color=line.get_color(), alpha=0.2)
    if marker_at is not None:
        ax.axvline(marker_at, color="gray", linestyle=":", label="trained at")
    if logx:
        ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    return save_figure(fig, path)
