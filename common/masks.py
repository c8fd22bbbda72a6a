"""Loading your own images with their segmentation masks (chapter 09).

    folder/images/scene1.png   the images: PNG, JPEG, BMP or GIF, grey or colour, all one size
    folder/masks/scene1.png    for each, a PNG of the same name and size whose pixel values are
                               class numbers (0, 1, 2, ...; 0 is taken as background)

A missing `masks/`, an image without a mask (or a mask without an image), a mask of another size
than its image, images of different sizes, or a mask value that cannot be a class number raise
`DataError` with one line naming the file.
"""

from __future__ import annotations

from pathlib import Path

from common.data import IMAGE_SUFFIXES, holdout_split
from common.errors import DataError
from common.scenes import Segmentation

import numpy as np

MAX_CLASS = 63  # the largest class number a mask may hold (a mask of 0 and 255 is black and white,
#                 not classes)


def is_mask_folder(path: str | Path) -> bool:
    """Whether `path` is a folder laid out for segmentation (it has `images/` or `masks/`)."""
    path = Path(path).expanduser()
    return path.is_dir() and ((path / "images").is_dir() or (path / "masks").is_dir())


def _files(folder: Path, suffixes: tuple[str, ...]) -> dict[str, Path]:
    return {
        p.stem: p
        for p in sorted(folder.iterdir())
        if p.suffix.lower() in suffixes and not p.name.startswith(".")
    }


def _read(path: Path, mode: str | None) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError  # noqa: PLC0415

    try:
        with Image.open(path) as image:
            if mode is None:  # a mask: its values as they are (palette indices for a palette PNG)
                if image.mode not in ("L", "P", "1", "I", "I;16"):
                    raise DataError(
                        f"{path}: a mask must be a one-channel PNG of class numbers, not "
                        f"{image.mode}"
                    )
                return np.asarray(image).astype(np.int64)
            return np.asarray(image.convert(mode))
    except (OSError, UnidentifiedImageError) as e:
        raise DataError(f"{path}: cannot read it as an image ({e})") from None


def read_mask_folder(folder: str | Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """The images as float32 in [0, 1] (N, height, width, channels: 1 if every image is grey, else
    3), their masks (uint8 class numbers, N x height x width), the class numbers found (sorted),
    and the file names, in a fixed random order (the same every time)."""

    folder = Path(folder).expanduser()
    if not (folder / "images").is_dir():
        raise DataError(
            f"{folder}: no images/ folder (a segmentation folder holds images/ and masks/)"
        )
    if not (folder / "masks").is_dir():
        raise DataError(
            f"{folder}: no masks/ folder beside images/ (one PNG of class numbers per image)"
        )
    images = _files(folder / "images", IMAGE_SUFFIXES)
    masks = _files(folder / "masks", (".png",))
    if not images:
        raise DataError(f"{folder / 'images'}: no images (PNG, JPEG, BMP, GIF) found")
    for name in images:
        if name not in masks:
            raise DataError(f"{images[name]}: no mask of the same name in {folder / 'masks'}")
    for name in masks:
        if name not in images:
            raise DataError(
                f"{masks[name]}: a mask with no image of the same name in {folder / 'images'}"
            )
    names = sorted(images)
    xs = []
    ys = []
    size = None
    for name in names:  # each file read once, as RGB; grey if every image turns out grey
        x = _read(images[name], "RGB")
        y = _read(masks[name], None)
        if size is None:
            size = x.shape[:2]
        elif x.shape[:2] != size:
            raise DataError(
                f"{images[name]}: {x.shape[1]}x{x.shape[0]} pixels, where {images[names[0]].name} "
                "has "
                f"{size[1]}x{size[0]}; all images must be one size"
            )
        if y.shape != x.shape[:2]:
            raise DataError(
                f"{masks[name]}: {y.shape[1]}x{y.shape[0]} pixels, its image "
                f"{x.shape[1]}x{x.shape[0]}"
            )
        if y.min() < 0 or y.max() > MAX_CLASS:
            raise DataError(
                f"{masks[name]}: holds the value {int(y.max())}; mask pixels are class numbers 0 "
                f"to {MAX_CLASS} "
                "(a black-and-white mask saved as 0 and 255 should be saved as 0 and 1)"
            )
        xs.append(x)
        ys.append(y.astype(np.uint8))
    order = np.random.default_rng(0).permutation(len(names))
    x = np.stack(xs)[order]
    if np.array_equal(x[..., :1].repeat(3, axis=-1), x):
        x = x[..., :1]
    x = (x / 255.0).astype(np.float32)
    y = np.stack(ys)[order]
    return x, y, np.unique(y), [names[i] for i in order]


def pad_to_multiple(xs, ys, multiple: int):
    """Images (N, h, w, c) and masks (N, h, w) padded at the bottom and right with zeros to a
    height and width that are multiples of `multiple` (what a network that halves the size k
    times needs); returns them and the original (h, w)."""
    h, w = xs[0].shape[1:3]
    pad_h = (multiple - h % multiple) % multiple  # rows to add: up to the next multiple
    pad_w = (multiple - w % multiple) % multiple
    if pad_h or pad_w:
        print(
            f"images of {w}x{h} padded to {w + pad_w}x{h + pad_h}, a multiple of {multiple}; "
            f"scored on the {w}x{h}"
        )
    xs = tuple(np.pad(x, ((0, 0), (0, pad_h), (0, pad_w), (0, 0))) for x in xs)
    ys = tuple(np.pad(y, ((0, 0), (0, pad_h), (0, pad_w))) for y in ys)
    return xs, ys, (h, w)


def mask_folder_data(
    folder: str | Path, validation_size: int | None, train_limit: int | None, multiple: int
) -> Segmentation:
    """A folder of your own images and masks, ready to segment: the classes are the mask values
    found (class k: the k-th smallest value; 0 taken as background); a fifth of the pairs kept for
    testing, as of a folder of images; the last `validation_size` of the others held out; training
    pairs drawn at random; every image padded to a multiple of `multiple` (scored on its own
    pixels)."""
    images, masks, values, _ = read_mask_folder(folder)
    masks = np.searchsorted(values, masks).astype(np.uint8)
    class_names = ["background" if v == 0 else f"class {v}" for v in values]
    n_test = max(1, round(len(images) / 5))
    x_test = images[-n_test:]
    y_test = masks[-n_test:]
    x_train, x_val = holdout_split(images[:-n_test], validation_size, "VALIDATION_SIZE")
    y_train = masks[: len(x_train)]
    y_val = masks[len(x_train) : len(images) - n_test]
    if train_limit:
        x_train = x_train[:train_limit]
        y_train = y_train[:train_limit]
    (x_train, x_val, x_test), (y_train, y_val, y_test), (height, width) = pad_to_multiple(
        (x_train, x_val, x_test), (y_train, y_val, y_test), multiple
    )

    def draw(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
        chosen = rng.integers(0, len(x_train), size=n)
        return x_train[chosen], y_train[chosen]

    return Segmentation(
        draw=draw,
        x_val=x_val,
        y_val=y_val,
        x_test=x_test,
        y_test=y_test,
        class_names=class_names,
        height=height,
        width=width,
        source=f"{len(images):,} image-mask pairs from {folder}",
        x_train=x_train,
        y_train=y_train,
    )
