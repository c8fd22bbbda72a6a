"""Loading the images: MNIST, Fashion-MNIST, or your own.

`load_data()` returns a `Dataset` of float32 grey images in [0, 1] (shape N x 28 x 28 by
default), their labels (uint8, or None for images without labels), the class names, and a
one-line description of where they came from. It looks, in order, at:

1. an explicit path (the `path` argument, a script's `--data=` setting): a Keras-style `.npz`
   (`x_train`, `x_test`, and optionally `y_train`, `y_test`), a folder holding the four IDX files
   of the original MNIST distribution (gzipped or not), or a folder of your own images (see
   `read_image_folder`);
2. for `dataset="mnist"`: the `MNIST_PATH` environment variable; the Keras cache
   (`~/.keras/datasets/mnist.npz`) or, when the network answers within a few seconds, the Keras
   download that fills it; and last the small real sample shipped in `common/mnist_sample.npz`
   (a few thousand digits), with a warning, so that every script still runs offline;
3. for `dataset="fashion_mnist"`: the `FASHION_MNIST_PATH` environment variable; the IDX files of
   Debian's `dataset-fashion-mnist` package; the Keras cache or download.

Images of another size or in colour are converted to grey and resized. A missing, truncated or
malformed file raises `DataError` with one line naming the file and what is wrong with it.
"""

from __future__ import annotations

import gzip
import os
import socket
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

from common.errors import DataError, SettingError

import numpy as np

SAMPLE_PATH = Path(__file__).with_name("mnist_sample.npz")
KERAS_DATASETS = Path(os.environ.get("KERAS_HOME", Path.home() / ".keras")) / "datasets"
KERAS_CACHE = KERAS_DATASETS / "mnist.npz"
FASHION_KERAS_CACHE = KERAS_DATASETS / "fashion-mnist"  # the four IDX files, gzipped
FASHION_DEBIAN = Path("/usr/share/datasets/fashion-mnist")  # apt-get install dataset-fashion-mnist
DATASETS = ("mnist", "fashion_mnist")
FASHION_CLASSES = (
    "T-shirt/top, Trouser, Pullover, Dress, Coat, Sandal, Shirt, Sneaker, Bag, Ankle boot"
)
CLASS_NAMES = {
    "mnist": [str(d) for d in range(10)],
    "fashion_mnist": FASHION_CLASSES.split(", "),
}
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif")
TEST_FRACTION = 0.2  # of your own images, kept for testing when they come without a test split
DOWNLOAD_HOST = ("storage.googleapis.com", 443)
IDX_FILES = {
    "x_train": "train-images-idx3-ubyte",
    "y_train": "train-labels-idx1-ubyte",
    "x_test": "t10k-images-idx3-ubyte",
    "y_test": "t10k-labels-idx1-ubyte",
}
IMAGE_MAGIC = 2051
LABEL_MAGIC = 2049
GREY_WEIGHTS = np.array([0.2989, 0.5870, 0.1140], np.float32)  # red, green, blue: TensorFlow's
#                                                                rgb_to_grayscale
TEST_SEED = 2010  # the seed of every random draw a test set is made with: every run is scored on
#                   the same images


# set when load_data fell back to the bundled sample: a run's closing line says so
sample_in_use = False


def holdout_split(
    x: np.ndarray, count: int | None, setting: str, fraction: float = 1 / 12, cap: int = 5000
) -> tuple[np.ndarray, np.ndarray]:
    """The images `x` split in two: those to train on, and the last `count` kept apart (never
    trained on). `count=None` keeps `fraction` of them, at most `cap` and at least one; `setting`
    names the setting that gave `count`, for the one-line error when it cannot work."""
    n = len(x)
    if n < 2:
        raise DataError(
            f"{n} training image(s): at least 2 are needed, one to train on and one to hold out"
        )
    if count is None:
        count = min(cap, max(1, round(n * fraction)))
    elif not 0 < count < n:
        raise SettingError(
            f"{setting}={count}: must be at least 1 and less than the {n:,} training images; "
            f"set it to at most {n - 1} (or to None: {min(cap, max(1, round(n * fraction))):,} "
            "here)"
        )
    return x[:-count], x[-count:]


def warn(message: str) -> None:
    """One line on stderr, for things the reader should know but that do not stop the run."""
    print(f"warning: {message}", file=sys.stderr)


@dataclass
class Dataset:
    x_train: np.ndarray  # float32, (N, height, width), values in [0, 1]
    y_train: np.ndarray | None  # uint8, (N,), class numbers; None for images without labels
    x_test: np.ndarray
    y_test: np.ndarray | None
    source: str  # one line: where the images came from
    class_names: list[str] | None = None  # the name of each class number (None without labels)

    @property
    def labelled(self) -> bool:
        return self.y_train is not None

    def describe(self) -> str:
        classes = (
            f", {len(self.class_names)} classes"
            if self.labelled and self.class_names
            else ", no labels"
        )
        sizes = f"{len(self.x_train):,} training and {len(self.x_test):,} test images"
        return f"{sizes}{classes}, from {self.source}"


def _check_arrays(
    arrays: dict[str, np.ndarray], where: str, classes: int | None = 10
) -> dict[str, np.ndarray]:
    """Check raw image arrays: images (N, height, width[, channels]) of pixels 0-255 (uint8 or
    another integer type) or floats in [0, 1]; labels, when present, one integer per image in
    0..classes-1 (any non-negative integer when `classes` is None). Raise DataError naming
    `where`."""
    has = [f"y_{split}" in arrays for split in ("train", "test")]
    if any(has) and not all(has):
        given, missing = ("y_train", "y_test") if has[0] else ("y_test", "y_train")
        raise DataError(
            f"{where}: has {given} but is missing {missing} (give labels for both splits, or for "
            "neither)"
        )
    for split in ("train", "test"):
        x = arrays[f"x_{split}"]
        y = arrays.get(f"y_{split}")
        if x.ndim not in (3, 4) or (x.ndim == 4 and x.shape[3] not in (1, 3, 4)):
            raise DataError(
                f"{where}: x_{split} must have shape (N, height, width) or (N, height, width, 1, 3 "
                "or 4 channels), "
                f"got {x.shape}"
            )
        if len(x) == 0:
            raise DataError(f"{where}: x_{split} holds no images")
        if np.issubdtype(x.dtype, np.floating):
            low = float(np.min(x))
            high = float(np.max(x))
            if not 0 <= low <= high <= 1:
                raise DataError(
                    f"{where}: x_{split} holds {x.dtype} values from {low:g} to {high:g}, outside "
                    "[0, 1] "
                    "(give uint8 pixels 0-255, or floats in [0, 1])"
                )
        elif x.dtype != np.uint8 and not (
            np.issubdtype(x.dtype, np.integer) and 0 <= x.min() <= x.max() <= 255
        ):
            raise DataError(
                f"{where}: x_{split} must hold uint8 pixels 0-255 or floats in [0, 1], got "
                f"{x.dtype}"
            )
        if y is None:
            continue
        if not np.issubdtype(y.dtype, np.integer):
            raise DataError(f"{where}: y_{split} must hold integer class numbers, got {y.dtype}")
        if y.shape != (len(x),):
            raise DataError(
                f"{where}: y_{split} has shape {y.shape} but x_{split} holds {len(x)} images"
            )
        if y.min() < 0 or (classes is not None and y.max() >= classes):
            bad = int(y.min()) if y.min() < 0 else int(y.max())
            allowed = f"0-{classes - 1}" if classes is not None else "0 or more"
            raise DataError(f"{where}: y_{split} holds label {bad}, outside {allowed}")
    return arrays


def read_npz(path: str | Path, classes: int | None = 10) -> dict[str, np.ndarray]:
    """Read a Keras-style .npz: `x_train` and `x_test`, and `y_train` and `y_test` when it has
    labels, checked (labels in 0..classes-1; any non-negative integers when `classes` is None)."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as f:
            missing = [k for k in ("x_train", "x_test") if k not in f.files]
            if missing:
                raise DataError(
                    f"{path}: missing array(s) {', '.join(missing)} (has "
                    f"{', '.join(f.files) or 'none'})"
                )
            arrays = {k: f[k] for k in IDX_FILES if k in f.files}
    except DataError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        size = path.stat().st_size if path.exists() else 0
        what = (
            "is empty" if size == 0 else f"is not a readable .npz file (truncated or corrupt: {e})"
        )
        raise DataError(f"{path}: {what}") from None
    return _check_arrays(arrays, str(path), classes)


def _read_idx_file(path: Path, magic: int, ndim: int) -> np.ndarray:
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as e:
        raise DataError(f"{path}: cannot be read ({e})") from None
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{path}: only {len(raw)} bytes, too short for an IDX header")
    found = int.from_bytes(raw[:4], "big")
    if found != magic:
        raise DataError(f"{path}: bad IDX magic number {found} (expected {magic})")
    dims = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    expected = int(np.prod(dims))
    if len(raw) - header != expected:
        raise DataError(
            f"{path}: header announces {' x '.join(map(str, dims))} = {expected} bytes of data, "
            f"file holds {len(raw) - header}"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims)


def read_idx_folder(folder: str | Path) -> dict[str, np.ndarray]:
    """Read the four IDX files (optionally .gz) of the original MNIST distribution."""
    folder = Path(folder)
    arrays = {}
    for key, stem in IDX_FILES.items():
        candidates = [folder / stem, folder / (stem + ".gz"), folder / stem.replace("-idx", ".idx")]
        candidates += [c.with_name(c.name + ".gz") for c in candidates[2:]]
        path = next((c for c in candidates if c.is_file()), None)
        if path is None:
            raise DataError(
                f"{folder}: no {stem}[.gz] file (a folder needs the four MNIST IDX files)"
            )
        is_image = key.startswith("x")
        arrays[key] = _read_idx_file(
            path, IMAGE_MAGIC if is_image else LABEL_MAGIC, 3 if is_image else 1
        )
    return _check_arrays(arrays, str(folder))


def _has_idx_files(folder: Path) -> bool:
    return any(
        p.name.replace(".", "-").startswith(tuple(IDX_FILES.values())) for p in folder.iterdir()
    )


def _image_files(folder: Path) -> list[Path]:
    """Image files in `folder` and its sub-folders (hidden ones aside)."""
    return [
        p
        for p in folder.rglob("*")
        if p.suffix.lower() in IMAGE_SUFFIXES
        and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    ]


def _read_image(path: Path, image_size: int) -> np.ndarray:
    """One image file as uint8 grey (size x size): colour averaged to grey as TensorFlow does, its
    largest centred square kept, and shrunk (area averaging) or enlarged (bilinear)."""
    from PIL import Image, UnidentifiedImageError  # noqa: PLC0415

    try:
        with Image.open(path) as image:
            rgb = np.asarray(image.convert("RGB"), dtype=np.float32)
    except (OSError, UnidentifiedImageError, ValueError) as e:
        first_line = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise DataError(f"{path}: cannot read it as an image ({first_line})") from None
    grey = rgb @ GREY_WEIGHTS
    height, width = grey.shape
    side = min(height, width)
    top = (height - side) // 2
    left = (width - side) // 2
    square = grey[top : top + side, left : left + side]
    return np.round(resize(square[None], image_size)[0]).clip(0, 255).astype(np.uint8)


def _images_from_directory(
    folder: Path, image_size: int
) -> tuple[np.ndarray, np.ndarray | None, list[str] | None]:
    """Every image under `folder` as uint8 grey (N, size, size), with class numbers when the images
    sit in one sub-folder per class (None when they sit in `folder` itself)."""
    classes = sorted(
        d.name
        for d in folder.iterdir()
        if d.is_dir() and not d.name.startswith(".") and _image_files(d)
    )
    if classes:
        files = [
            (path, k)
            for k, name in enumerate(classes)
            for path in sorted(_image_files(folder / name))
        ]
    else:
        files = [(path, None) for path in sorted(_image_files(folder))]
    if not files:
        raise DataError(f"{folder}: no images (PNG, JPEG, BMP, GIF) found")
    images = np.stack([_read_image(path, image_size) for path, _ in files])
    if not classes:
        return images, None, None
    labels = np.array([k for _, k in files], dtype=np.uint8 if len(classes) <= 256 else np.int32)
    return images, labels, classes


def read_image_folder(
    folder: str | Path, image_size: int = 28
) -> tuple[dict[str, np.ndarray], list[str] | None]:
    """Read a folder of your own images (PNG, JPEG, BMP, GIF; any size, colour or grey) with
    Pillow: each becomes a grey `image_size` x `image_size` square (the largest centred square of
    it, resized). Layouts understood:

        folder/*.png                           no labels
        folder/<class>/*.png                   one sub-folder per class: labelled by sub-folder
        folder/train/..., folder/test/...      either of the above, with its own test split

    Without `train/` and `test/`, a random TEST_FRACTION of the images (the same ones every time)
    is kept for testing. Both splits come in a fixed random order (the same every time), so that
    the first or last N images are a mix of every class. Returns the arrays (uint8 images, and
    labels if any) and the class names.
    """
    folder = Path(folder)
    splits = {d.name.lower(): d for d in folder.iterdir() if d.is_dir()}
    if "train" in splits and "test" in splits:
        x_train, y_train, names = _images_from_directory(splits["train"], image_size)
        x_test, y_test, test_names = _images_from_directory(splits["test"], image_size)
        if (names is None) != (test_names is None) or not set(test_names or ()) <= set(names or ()):
            raise DataError(f"{folder}: test/ has classes {test_names} but train/ has {names}")
        # test/ lacks a class: number its own the same
        if names is not None and test_names != names:
            y_test = np.array([names.index(test_names[k]) for k in y_test], dtype=y_test.dtype)
        train = np.random.default_rng(0).permutation(len(x_train))
        test = np.random.default_rng(1).permutation(len(x_test))
    else:
        x, y, names = _images_from_directory(folder, image_size)
        if len(x) < 2:
            raise DataError(
                f"{folder}: holds {len(x)} image; at least 2 are needed (one to train on, one to "
                "test)"
            )
        order = np.random.default_rng(0).permutation(len(x))
        n_test = max(1, round(TEST_FRACTION * len(x)))
        x_train = x_test = x
        y_train = y_test = y
        test = order[:n_test]
        train = order[n_test:]
    # in a fixed random order, not folder by folder: the first or last N images (TRAIN_LIMIT, a
    # chapter's held-out or validation images) are then a mix of every class
    x_train = x_train[train]
    x_test = x_test[test]
    if y_train is not None:
        y_train = y_train[train]
        y_test = y_test[test]
    arrays = {"x_train": x_train, "x_test": x_test}
    if y_train is not None:
        arrays.update(y_train=y_train, y_test=y_test)
    return arrays, names


def read_path(
    path: str | Path, image_size: int = 28
) -> tuple[dict[str, np.ndarray], list[str] | None]:
    """Read an explicit location: an .npz file, a folder of MNIST IDX files, or a folder of
    images. Returns the raw arrays and the class names (None when it has no labels)."""
    path = Path(path).expanduser()
    if not path.exists():
        raise DataError(f"{path}: no such file or folder")
    if not path.is_dir():
        arrays = read_npz(path, classes=None)
        names = None
        if "y_train" in arrays:
            names = [
                str(c) for c in range(int(max(arrays["y_train"].max(), arrays["y_test"].max())) + 1)
            ]
        return arrays, names
    if _has_idx_files(path):
        return read_idx_folder(path), CLASS_NAMES["mnist"]
    if _image_files(path):
        return read_image_folder(path, image_size)
    raise DataError(
        f"{path}: no train-images-idx3-ubyte[.gz] file and no images (PNG, JPEG, BMP, GIF): "
        "a folder needs the four MNIST IDX files, or images"
    )


def _read_ten_classes(path: str | Path) -> dict[str, np.ndarray]:
    """MNIST or Fashion-MNIST from an environment variable's path: an IDX folder or an .npz."""
    path = Path(path).expanduser()
    if not path.exists():
        raise DataError(f"{path}: no such file or folder")
    return read_idx_folder(path) if path.is_dir() else read_npz(path)


def _online(timeout: float) -> bool:
    try:
        socket.create_connection(DOWNLOAD_HOST, timeout=timeout).close()
    except OSError:
        return False
    return True


def _keras_download(timeout: float = 3.0) -> dict[str, np.ndarray] | None:
    """The Keras cache, or its download when the network answers within `timeout` seconds."""
    if not KERAS_CACHE.is_file():
        if not _online(timeout):
            return None
        import keras  # noqa: PLC0415  (slow import, only when a download is possible)

        try:
            keras.datasets.mnist.load_data()
        except Exception:  # noqa: BLE001  (any failure means: fall back to the sample)
            return None
    try:
        return read_npz(KERAS_CACHE)
    except DataError:
        return None


def _fashion_mnist(timeout: float = 3.0) -> tuple[dict[str, np.ndarray], str]:
    """Fashion-MNIST from $FASHION_MNIST_PATH, Debian's package, or the Keras cache or download."""
    if os.environ.get("FASHION_MNIST_PATH"):
        path = os.environ["FASHION_MNIST_PATH"]
        return _read_ten_classes(path), path
    for folder in (FASHION_DEBIAN, FASHION_KERAS_CACHE):
        if folder.is_dir() and _has_idx_files(folder):
            return read_idx_folder(folder), str(folder)
    if _online(timeout):
        import keras  # noqa: PLC0415

        try:
            keras.datasets.fashion_mnist.load_data()
            return read_idx_folder(
                FASHION_KERAS_CACHE
            ), f"the Keras download ({FASHION_KERAS_CACHE})"
        except Exception:  # noqa: BLE001, S110  (any failure: the error below says what to do)
            pass
    raise DataError(
        "Fashion-MNIST not found: set FASHION_MNIST_PATH or --data= to its IDX folder or .npz, "
        "install Debian's "
        "dataset-fashion-mnist package, or go online once for the Keras download"
    )


def load_data(
    path: str | Path | None = None,
    dataset: str = "mnist",
    train_limit: int | None = None,
    image_size: int = 28,
) -> Dataset:
    """Load a data set as float32 grey images in [0, 1] of `image_size` x `image_size` pixels,
    with their labels when it has some (see the module docstring for where it looks).

    `path` (a script's DATA setting) wins over `dataset` (its DATASET setting). `train_limit`
    keeps only the first N training images; a limit larger than the training set gives a warning
    and the whole set.
    """
    global sample_in_use
    sample_in_use = False
    if dataset not in DATASETS:
        raise SettingError(f"DATASET={dataset!r}: expected one of {', '.join(DATASETS)}")
    if path:
        arrays, class_names = read_path(path, image_size)
        source = str(path)
    elif dataset == "fashion_mnist":
        arrays, source = _fashion_mnist()
        class_names = CLASS_NAMES["fashion_mnist"]
        source = f"Fashion-MNIST, {source}"
    else:
        class_names = CLASS_NAMES["mnist"]
        if os.environ.get("MNIST_PATH"):
            source = os.environ["MNIST_PATH"]
            arrays = _read_ten_classes(source)
        else:
            arrays = _keras_download()
            source = f"the Keras download ({KERAS_CACHE})"
            if arrays is None:
                sample_in_use = True
                arrays = read_npz(SAMPLE_PATH)
                source = (
                    f"the bundled sample {SAMPLE_PATH.name} "
                    "(offline: set MNIST_PATH for the full set)"
                )
                warn(
                    "MNIST could not be downloaded and MNIST_PATH is not set: using the bundled "
                    "sample of "
                    f"{len(arrays['x_train']):,} training and {len(arrays['x_test']):,} test digits"
                )
    if train_limit is not None:
        if train_limit > len(arrays["x_train"]):
            n = len(arrays["x_train"])
            warn(
                f"TRAIN_LIMIT={train_limit} is larger than the {n:,} training images: using them "
                "all"
            )
        arrays = {k: v[:train_limit] if k.endswith("_train") else v for k, v in arrays.items()}
    return Dataset(
        x_train=to_grey_images(arrays["x_train"], image_size),
        y_train=arrays.get("y_train"),
        x_test=to_grey_images(arrays["x_test"], image_size),
        y_test=arrays.get("y_test"),
        source=source,
        class_names=class_names if "y_train" in arrays else None,
    )


def load_mnist(path: str | Path | None = None, train_limit: int | None = None) -> Dataset:
    """MNIST (or the file at `path`) at 28 x 28: `load_data(path, "mnist", train_limit)`."""
    return load_data(path, "mnist", train_limit)


def to_grey_images(x: np.ndarray, image_size: int) -> np.ndarray:
    """Checked raw images (N, height, width[, channels]) as float32 grey squares in [0, 1] of
    `image_size` x `image_size`: colour averaged to grey as TensorFlow does, alpha dropped, and
    resized (area averaging when shrinking, bilinear when enlarging) when the size differs."""
    images = x.astype(np.float32)
    if not np.issubdtype(x.dtype, np.floating):
        images /= np.float32(255)
    if images.ndim == 4:
        images = images[..., :3] @ GREY_WEIGHTS if images.shape[3] >= 3 else images[..., 0]
    if images.shape[1:] != (image_size, image_size):
        images = np.clip(resize(images, image_size), 0, 1)
    return np.ascontiguousarray(images, dtype=np.float32)


def resize(images: np.ndarray, size: int) -> np.ndarray:
    """Images (N, height, width) resized to (N, size, size), as `tf.image.resize` does: each side
    shrunk by area averaging (every output pixel the mean of the input area it covers) or enlarged
    bilinearly (pixel centres at half-integers), one matrix product per side."""
    rows = _resize_matrix(images.shape[1], size)
    cols = _resize_matrix(images.shape[2], size)
    return np.einsum("oh,nhw,pw->nop", rows, images.astype(np.float64), cols).astype(np.float32)


def _resize_matrix(n: int, size: int) -> np.ndarray:
    """The (size, n) matrix that resizes one side of n pixels to `size`."""
    matrix = np.zeros((size, n))
    scale = n / size
    if n >= size:  # area: the overlap of input pixel i with output pixel o's span, over the span
        for o in range(size):
            start = o * scale
            stop = (o + 1) * scale
            for i in range(int(np.floor(start)), min(n, int(np.ceil(stop)))):
                matrix[o, i] = (min(stop, i + 1) - max(start, i)) / scale
        return matrix
    for o in range(size):  # bilinear, from the nearest two pixel centres, clamped at the edges
        position = min(max((o + 0.5) * scale - 0.5, 0.0), n - 1.0)
        below = int(np.floor(position))
        above = min(below + 1, n - 1)
        matrix[o, below] += 1 - (position - below)
        matrix[o, above] += position - below
    return matrix


def check_classes(data: Dataset, classes: object, where: str) -> list[int]:
    """The class numbers a one-class script (chapter 07) makes detectors for: `classes` (its
    CLASSES setting, None: every class), checked against `data`, which must have at least two
    classes; `where` names the data in the one-line errors."""
    if not data.labelled:
        raise DataError(
            f"{where}: has no classes; one-class detection needs one sub-folder of images per "
            "class (folder/<class>/*.png), or an .npz with y_train and y_test"
        )
    count = len(data.class_names)
    if count < 2:
        raise DataError(f"{where}: has one class only ({data.class_names[0]}); 2 are needed")
    chosen = list(range(count)) if classes is None else [int(c) for c in np.atleast_1d(classes)]
    if not chosen or any(not 0 <= c < count for c in chosen):
        raise SettingError(f"CLASSES={classes}: expected class numbers from 0 to {count - 1}")
    return chosen


def binarize(images: np.ndarray, seed: int) -> np.ndarray:
    """Images with grey levels in [0, 1] made binary once, for good: each pixel 1 with probability
    equal to its grey level, else 0, drawn with NumPy from `seed` (the same images every run)."""
    u = np.random.default_rng(seed).random(images.shape)
    return (u < images).astype(np.float32)
