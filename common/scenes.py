"""Images to segment, with a class at every pixel (chapter 09): scenes made of a few digits, as in
M2NIST, or your own images with their masks (`common.masks`).

`make_scenes` pastes 1 to `most` images on a blank canvas, each where its ink meets no other ink,
and labels every pixel of a stroke with its image's class + 1, every other pixel 0 (background).
`digit_scenes` makes the chapter's data of them: training scenes drawn afresh for every batch from
the training digits, validation scenes from the held-out ones, test scenes from the test digits,
once, with the fixed TEST_SEED.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from common.data import TEST_SEED, Dataset, holdout_split

import numpy as np

STROKE = 0.5  # a pixel above this grey level is stroke, labelled with its digit; below, background


@dataclass
class Segmentation:
    """Images (N, height, width, channels) with a class at every pixel (N, height, width)."""

    # n training images and masks
    draw: Callable[[np.random.Generator, int], tuple[np.ndarray, np.ndarray]]
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    class_names: list[str]  # class 0 is the background
    height: int  # of the images as they came, before any padding: the pixels that are scored
    width: int
    source: str  # one line: where the images came from
    # the labelled training images, where there is a fixed set of them
    x_train: np.ndarray | None = None
    y_train: np.ndarray | None = None


def make_scenes(
    images: np.ndarray,
    labels: np.ndarray,
    n: int,
    size: int,
    most: int,
    rng: np.random.Generator,
    tries: int = 20,
    margin: int = 4,
) -> tuple[np.ndarray, np.ndarray]:
    """`n` scenes of size x size with 1 to `most` of `images` each (N, size, size, 1), and their
    masks (N, size, size): at every pixel, 1 + the label of the image whose stroke (pixel > STROKE)
    covers it, or 0 (background). Each image goes where its ink (pixel > 0) meets no other ink and
    stays on the canvas (its blank border, up to `margin` pixels, may not); one that finds no such
    place in `tries` is left out."""
    h, w = images.shape[1:3]
    big = size + 2 * margin  # the canvas and a margin all round, cropped away at the end
    scenes = np.zeros((n, big, big), np.float32)
    masks = np.zeros((n, big, big), np.uint8)
    count = rng.integers(1, most + 1, size=n)  # images in each scene
    rows = np.arange(h)[:, None]
    cols = np.arange(w)[None, :]
    for slot in range(most):
        chosen = rng.integers(0, len(images), size=n)  # the image each scene gets in this slot
        waiting = slot < count  # the scenes still to place it
        picked = images[chosen]
        ink_rows = picked.any(axis=2)  # which rows and columns of each picked image hold ink
        ink_cols = picked.any(axis=1)
        first_ink = np.array([ink_rows.argmax(axis=1), ink_cols.argmax(axis=1)])
        last_ink = np.array(
            [h - 1 - ink_rows[:, ::-1].argmax(axis=1), w - 1 - ink_cols[:, ::-1].argmax(axis=1)]
        )
        for _ in range(tries):
            which = np.flatnonzero(waiting)
            corner = rng.integers(0, big - h + 1, size=(2, len(which)))  # top and left of each try
            ink_on_canvas = (corner + first_ink[:, which] >= margin) & (
                corner + last_ink[:, which] < margin + size
            )
            inside = np.all(ink_on_canvas, axis=0)
            # the canvas rows and columns each image would cover
            top = corner[0][:, None, None] + rows
            left = corner[1][:, None, None] + cols
            patch = picked[which]
            canvas = scenes[which[:, None, None], top, left]
            overlap = np.any((patch > 0) & (canvas > 0), axis=(1, 2))  # ink on ink
            free = inside & ~overlap
            put = which[free][:, None, None]  # the scenes that take their image now, and where
            top = top[free]
            left = left[free]
            patch = patch[free]
            scenes[put, top, left] = np.maximum(scenes[put, top, left], patch)
            stroke_label = labels[chosen[put]] + 1
            masks[put, top, left] = np.where(patch > STROKE, stroke_label, masks[put, top, left])
            waiting[which[free]] = False
            if not waiting.any():
                break
    crop = slice(margin, margin + size)
    return scenes[:, crop, crop, None], masks[:, crop, crop]


def digit_scenes(
    data: Dataset, validation_size: int | None, size: int, most: int, test_scenes: int
) -> Segmentation:
    """Scenes of size x size made of `data`'s images: training scenes drawn afresh from the
    training images, as many validation scenes as there are held-out images over two (plus one),
    and `test_scenes` test scenes made of the test images once, all with the fixed TEST_SEED."""
    digits, held_out = holdout_split(data.x_train, validation_size, "VALIDATION_SIZE")
    labels = data.y_train if data.labelled else np.zeros(len(data.x_train), np.uint8)
    test_labels = data.y_test if data.labelled else np.zeros(len(data.x_test), np.uint8)
    class_names = ["background", *(data.class_names if data.labelled else ["object"])]

    def draw(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
        return make_scenes(digits, labels[: len(digits)], n, size, most, rng)

    # about two digits a scene: each held-out digit in about one
    validation_count = len(held_out) // 2 + 1
    x_val, y_val = make_scenes(
        held_out,
        labels[len(digits) :],
        validation_count,
        size,
        most,
        np.random.default_rng(TEST_SEED + 1),
    )
    x_test, y_test = make_scenes(
        data.x_test, test_labels, test_scenes, size, most, np.random.default_rng(TEST_SEED)
    )
    return Segmentation(
        draw=draw,
        x_val=x_val,
        y_val=y_val,
        x_test=x_test,
        y_test=y_test,
        class_names=class_names,
        height=size,
        width=size,
        source=f"scenes of {size}x{size} made from {data.describe()}",
    )
