"""Figures, saved as PNG files only (Matplotlib's Agg backend: no display needed).

Every function draws one figure, saves it atomically to `path` and returns the path.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
from common.outputs import save_figure  # noqa: E402

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def image_rows(path: str | Path, rows: dict[str, np.ndarray], n: int = 10, title: str = "") -> Path:
    """A grid with one labelled row per entry of `rows` (e.g. original / corrupted / output),
    showing the first `n` images of each."""
    n = min(n, *(len(images) for images in rows.values()))
    fig, axes = plt.subplots(
        len(rows), n, figsize=(1.1 * n + 1.2, 1.2 * len(rows) + 0.4), squeeze=False
    )
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


def level_rows(path: str | Path, rows: dict[str, dict[str, np.ndarray]], title: str = "") -> Path:
    """One labelled row per entry of `rows`, each a dict of {caption: image}: the same image
    under one process at several levels, say, each captioned with its level."""
    n = max(len(images) for images in rows.values())
    fig, axes = plt.subplots(
        len(rows), n, figsize=(1.3 * n + 1.8, 1.45 * len(rows) + 0.4), squeeze=False
    )
    for r, (label, images) in enumerate(rows.items()):
        for c, ax in enumerate(axes[r]):
            ax.set_xticks([])
            ax.set_yticks([])
            if c >= len(images):
                ax.axis("off")
                continue
            caption, image = list(images.items())[c]
            image = np.asarray(image)
            side = int(round(np.sqrt(image.size)))
            ax.imshow(image.reshape(side, side), cmap="gray", vmin=0, vmax=1)
            ax.set_xlabel(caption, fontsize=9)
        axes[r, 0].set_ylabel(label, rotation=0, ha="right", va="center", fontsize=10)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return save_figure(fig, path)


def loss_curves(
    path: str | Path, histories: dict[str, dict[str, list[float]]], ylabel: str = "loss"
) -> Path:
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
    # many curves: the legend beside the plot, where it hides none of them
    if len(ax.get_lines()) > 4:
        fig.set_size_inches(8.8, 4)
        ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1), fontsize="small")
    else:
        ax.legend()
    fig.tight_layout()
    return save_figure(fig, path)


def code_scatter(
    path: str | Path,
    codes_2d: np.ndarray,
    labels: np.ndarray | None,
    class_names: list[str] | None = None,
    title: str = "",
    axis_labels: tuple[str, str] = ("code, first direction", "code, second direction"),
    class_label: str = "class",
) -> Path:
    """A 2-D view of codes (already projected to two dimensions), coloured by class when there
    are labels (one colour each for up to 10 classes, a colour scale beyond), with the axes and
    the colour bar named by `axis_labels` and `class_label`."""
    fig, ax = plt.subplots(figsize=(6.4, 5.6))
    if labels is None:
        ax.scatter(codes_2d[:, 0], codes_2d[:, 1], s=3, alpha=0.5, color="0.3")
    else:
        classes = len(class_names) if class_names else int(labels.max()) + 1
        cmap = "tab10" if classes <= 10 else "viridis"
        points = ax.scatter(
            codes_2d[:, 0],
            codes_2d[:, 1],
            c=labels,
            cmap=cmap,
            s=3,
            alpha=0.7,
            vmin=-0.5,
            vmax=classes - 0.5,
        )
        bar = fig.colorbar(
            points, ax=ax, ticks=range(classes) if classes <= 20 else None, label=class_label
        )
        if class_names and classes <= 20:
            bar.ax.set_yticklabels(class_names)
    ax.set_title(title)
    ax.set_xlabel(axis_labels[0])
    ax.set_ylabel(axis_labels[1])
    ax.grid(alpha=0.3)
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
            tiles[
                r * (side + 1) : r * (side + 1) + side, c * (side + 1) : c * (side + 1) + side
            ] = f
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
            ax.fill_between(
                x,
                [r.min() for r in runs],
                [r.max() for r in runs],
                color=line.get_color(),
                alpha=0.2,
            )
    if marker_at is not None:
        ax.axvline(marker_at, color="gray", linestyle=":", label="trained at")
    if logx:
        ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    if len(series) > 3:  # many lines: the legend below the plot, where it hides none of them
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2, fontsize="small")
    else:
        ax.legend()
    fig.tight_layout()
    return save_figure(fig, path)


def xy_curves(
    path: str | Path,
    series: dict[str, tuple[Sequence[float], Sequence[float]]],
    xlabel: str,
    ylabel: str,
    title: str = "",
    logx: bool = False,
    logy: bool = False,
) -> Path:
    """Several curves, each with its own x values: {label: (xs, ys)}."""
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    for label, (xs, ys) in series.items():
        ax.plot(xs, ys, marker="o", label=label)
    if logx:
        ax.set_xscale("log")
    if logy:
        ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3, which="both")
    ax.legend()
    fig.tight_layout()
    return save_figure(fig, path)


def mosaic(grid: np.ndarray) -> np.ndarray:
    """One image from a (rows, columns, height, width) array of images, a white line between
    them."""
    rows, cols, height, width = np.asarray(grid).shape
    tiles = np.ones((rows * (height + 1) - 1, cols * (width + 1) - 1), dtype=np.float32)
    for r in range(rows):
        for c in range(cols):
            tiles[
                r * (height + 1) : r * (height + 1) + height,
                c * (width + 1) : c * (width + 1) + width,
            ] = grid[r, c]
    return tiles


def image_grids(
    path: str | Path,
    grids: dict[str, np.ndarray],
    title: str = "",
    axis_values: tuple[Sequence[float], Sequence[float]] | None = None,
    axis_labels: tuple[str, str] = ("", ""),
) -> Path:
    """Panels side by side, one per entry of `grids`, each a (rows, columns, height, width) array
    of images in [0, 1] drawn as one mosaic. With `axis_values` (one number per column, one per
    row), the columns and rows are marked with the values they stand for, e.g. the codes the
    images were decoded from."""
    first = np.asarray(next(iter(grids.values())))
    rows, cols = first.shape[:2]
    # inches per image, the figure at most about 12 wide
    scale = min(0.45, 12 / (cols * len(grids)))
    fig, axes = plt.subplots(
        1, len(grids), figsize=(scale * cols * len(grids) + 0.8, scale * rows + 0.9), squeeze=False
    )
    for ax, (label, grid) in zip(axes[0], grids.items()):
        grid = np.asarray(grid)
        height, width = grid.shape[2:]
        ax.imshow(mosaic(grid), cmap="gray", vmin=0, vmax=1)
        ax.set_title(label, fontsize=10)
        if axis_values is None:
            ax.axis("off")
            continue
        xs, ys = axis_values
        ax.set_xticks([c * (width + 1) + (width - 1) / 2 for c in range(grid.shape[1])])
        ax.set_xticklabels([f"{v:.2g}" for v in xs], rotation=90, fontsize=7)
        ax.set_yticks([r * (height + 1) + (height - 1) / 2 for r in range(grid.shape[0])])
        ax.set_yticklabels([f"{v:.2g}" for v in ys], fontsize=7)
        ax.set_xlabel(axis_labels[0])
        ax.set_ylabel(axis_labels[1])
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return save_figure(fig, path)


def labelled_scatter(
    path: str | Path,
    points: np.ndarray,
    labels: np.ndarray | None,
    class_names: list[str] | None = None,
    xlabel: str = "",
    ylabel: str = "",
    title: str = "",
    class_label: str = "class",
) -> Path:
    """Points in two dimensions on labelled axes with their values (e.g. a 2-number code), one
    colour per class with a legend titled `class_label` naming the classes (up to 20 classes; a
    colour scale beyond), one grey without labels."""
    fig, ax = plt.subplots(figsize=(7.2, 5.8))
    if labels is None:
        ax.scatter(points[:, 0], points[:, 1], s=3, alpha=0.5, color="0.3")
    else:
        classes = len(class_names) if class_names else int(labels.max()) + 1
        if classes <= 20:
            colours = plt.get_cmap("tab10" if classes <= 10 else "tab20")
            for c in range(classes):
                chosen = labels == c
                name = class_names[c] if class_names else str(c)
                ax.scatter(
                    points[chosen, 0],
                    points[chosen, 1],
                    s=3,
                    alpha=0.6,
                    color=colours(c),
                    label=name,
                )
            ax.legend(
                title=class_label,
                markerscale=4,
                loc="center left",
                bbox_to_anchor=(1.01, 0.5),
                frameon=False,
            )
        else:
            shown = ax.scatter(points[:, 0], points[:, 1], c=labels, cmap="viridis", s=3, alpha=0.6)
            fig.colorbar(shown, ax=ax, label=class_label)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return save_figure(fig, path)


def bars(
    path: str | Path,
    categories: Sequence[str],
    series: dict[str, Sequence[float]],
    ylabel: str,
    title: str = "",
    ylim: tuple[float, float] | None = None,
    xlabel: str = "",
) -> Path:
    """Grouped bars: one group per category (e.g. a class), one bar of each series in every
    group, the series told apart by colour and named in a legend below the plot. A missing value
    (None or NaN) leaves a gap."""
    fig, ax = plt.subplots(figsize=(9, 4.6))
    width = 0.8 / max(1, len(series))
    positions = np.arange(len(categories))
    for i, (label, values) in enumerate(series.items()):
        heights = np.array([np.nan if v is None else v for v in values], dtype=float)
        ax.bar(positions + (i - (len(series) - 1) / 2) * width, heights, width, label=label)
    ax.set_xticks(positions)
    ax.set_xticklabels(categories)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if ylim is not None:
        ax.set_ylim(*ylim)
    ax.set_title(title)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=9, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=min(3, len(series)))
    fig.tight_layout()
    return save_figure(fig, path)


def roc_curves(
    path: str | Path, curves: dict[str, tuple[np.ndarray, np.ndarray]], title: str = ""
) -> Path:
    """ROC curves: the fraction of anomalies caught (true positive rate) against the fraction of
    normal examples flagged (false positive rate), one line per entry of `curves` (its label,
    e.g. "0 (AUC 0.998)"), over the diagonal of a score that knows nothing."""
    fig, ax = plt.subplots(figsize=(5.6, 5.2))
    colours = plt.get_cmap("tab10" if len(curves) <= 10 else "viridis")
    for i, (label, (fpr, tpr)) in enumerate(curves.items()):
        colour = colours(i) if len(curves) <= 10 else colours(i / max(1, len(curves) - 1))
        ax.plot(fpr, tpr, color=colour, label=label, linewidth=1.3)
    ax.plot([0, 1], [0, 1], ":", color="gray", label="chance")
    ax.set_xlabel("normal images flagged (false positive rate)")
    ax.set_ylabel("anomalies caught (true positive rate)")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.01)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    return save_figure(fig, path)


def score_histograms(
    path: str | Path,
    panels: dict[str, dict[str, np.ndarray]],
    thresholds: dict[str, float] | None = None,
    xlabel: str = "score",
) -> Path:
    """One panel per entry of `panels`: a histogram of each group of scores in it (e.g. "normal"
    and "anomalous"), each scaled to its own total so that groups of different sizes compare,
    on shared bins (logarithmic when the scores are positive and spread over more than a factor
    of 10), with a dashed vertical line at
    the panel's threshold when `thresholds` gives one."""
    thresholds = thresholds or {}
    fig, axes = plt.subplots(1, len(panels), figsize=(4.6 * len(panels), 3.8), squeeze=False)
    for ax, (title, groups) in zip(axes[0], panels.items()):
        values = np.concatenate([np.ravel(g) for g in groups.values()])
        low = float(values.min())
        high = float(values.max())
        logarithmic = low > 0 and high > 10 * low  # scores spread over more than a factor of 10
        bins = (
            np.geomspace(low, high, 50)
            if logarithmic
            else np.linspace(low, high if high > low else low + 1, 50)
        )
        for i, (label, scores) in enumerate(groups.items()):
            scores = np.ravel(scores)
            # each bar: the fraction of the group in its bin
            share = np.full(len(scores), 1 / max(1, len(scores)))
            ax.hist(
                scores,
                bins=bins,
                weights=share,
                alpha=0.55,
                color=f"C{i}",
                label=f"{label} ({len(scores):,})",
            )
        if title in thresholds:
            ax.axvline(thresholds[title], color="black", linestyle="--", label="threshold")
        if logarithmic:
            ax.set_xscale("log")
            ax.xaxis.set_major_locator(matplotlib.ticker.LogLocator(subs=(1, 2, 5)))
            ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}"))
            ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.set_xlabel(xlabel)
        ax.set_yticks([])
        ax.set_title(title)
        ax.legend(fontsize=8)
    fig.tight_layout()
    return save_figure(fig, path)


def mask_colours(classes: int) -> np.ndarray:
    """One RGB colour per class: black for class 0 (background), then tab10 or tab20's colours."""
    table = plt.get_cmap("tab10" if classes <= 11 else "tab20")
    return np.array([(0.0, 0.0, 0.0), *(table(k % table.N)[:3] for k in range(classes - 1))])


def mask_rows(
    path: str | Path,
    images: np.ndarray,
    rows: dict[str, np.ndarray],
    class_names: list[str],
    title: str = "",
) -> Path:
    """Grey images in the first row, then one row per entry of `rows`: masks of class numbers
    (N x height x width) coloured by class, with a legend naming the classes."""
    colours = mask_colours(len(class_names))
    n = len(images)
    fig, axes = plt.subplots(
        len(rows) + 1, n, figsize=(1.25 * n + 2.6, 1.3 * (len(rows) + 1) + 0.5), squeeze=False
    )
    for r, (label, shown) in enumerate({"scene": None, **rows}.items()):
        for c in range(n):
            ax = axes[r, c]
            if shown is None:
                ax.imshow(np.asarray(images[c]), cmap="gray", vmin=0, vmax=1)
            else:
                ax.imshow(colours[np.asarray(shown[c])], interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
        axes[r, 0].set_ylabel(label, rotation=0, ha="right", va="center", fontsize=10)
    handles = [plt.Rectangle((0, 0), 1, 1, color=colours[k]) for k in range(len(class_names))]
    fig.legend(
        handles,
        class_names,
        loc="center left",
        bbox_to_anchor=(1.0, 0.5),
        frameon=False,
        title="class",
    )
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return save_figure(fig, path)
