"""Loading MNIST: from a file you name, from the Keras download, or from the bundled sample.

`load_mnist()` returns a `Dataset` of float32 images in [0, 1] (shape N x 28 x 28), uint8 labels,
and a one-line description of where they came from. It looks, in order, at:

1. an explicit path (the `path` argument, a script's `--data=` setting, or the `MNIST_PATH`
   environment variable): a Keras-style `.npz` (`x_train, y_train, x_test, y_test`) or a folder
   holding the four IDX files of the original distribution, gzipped or not;
2. the Keras cache (`~/.keras/datasets/mnist.npz`) or, when the network answers within a few
   seconds, the Keras download that fills it;
3. the small real sample shipped in `common/mnist_sample.npz` (a few thousand digits), with a
   warning, so that every script still runs offline.

A missing, truncated or malformed file raises `DataError` with one line naming the file and what
is wrong with it.
"""

from __future__ import annotations

import gzip
import os
import socket
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from common.errors import DataError

SAMPLE_PATH = Path(__file__).with_name("mnist_sample.npz")
KERAS_CACHE = Path(os.environ.get("KERAS_HOME", Path.home() / ".keras")) / "datasets" / "mnist.npz"
DOWNLOAD_HOST = ("storage.googleapis.com", 443)
IDX_FILES = {
    "x_train": "train-images-idx3-ubyte",
    "y_train": "train-labels-idx1-ubyte",
    "x_test": "t10k-images-idx3-ubyte",
    "y_test": "t10k-labels-idx1-ubyte",
}
IMAGE_MAGIC, LABEL_MAGIC = 2051, 2049


def warn(message: str) -> None:
    """One line on stderr, for things the reader should know but that do not stop the run."""
    print(f"warning: {message}", file=sys.stderr)


@dataclass
class Dataset:
    x_train: np.ndarray  # float32, (N, 28, 28), values in [0, 1]
    y_train: np.ndarray  # uint8, (N,), digits 0-9
    x_test: np.ndarray
    y_test: np.ndarray
    source: str  # one line: where the images came from

    def describe(self) -> str:
        return f"{len(self.x_train):,} training and {len(self.x_test):,} test images from {self.source}"


def _check_arrays(arrays: dict[str, np.ndarray], where: str) -> dict[str, np.ndarray]:
    """Check shapes, dtypes and labels of raw uint8 MNIST arrays; raise DataError naming `where`."""
    for split in ("train", "test"):
        x, y = arrays[f"x_{split}"], arrays[f"y_{split}"]
        if x.dtype != np.uint8 or y.dtype != np.uint8:
            raise DataError(f"{where}: x_{split}/y_{split} must be uint8 pixels and labels, got {x.dtype}/{y.dtype}")
        if x.ndim != 3 or x.shape[1:] != (28, 28):
            raise DataError(f"{where}: x_{split} must have shape (N, 28, 28), got {x.shape}")
        if y.shape != (len(x),):
            raise DataError(f"{where}: y_{split} has shape {y.shape} but x_{split} holds {len(x)} images")
        if len(x) == 0:
            raise DataError(f"{where}: x_{split} holds no images")
        if y.max() > 9:
            raise DataError(f"{where}: y_{split} holds label {int(y.max())}, outside 0-9")
    return arrays


def read_npz(path: str | Path) -> dict[str, np.ndarray]:
    """Read a Keras-style mnist.npz into its four uint8 arrays, checked."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as f:
            missing = [k for k in IDX_FILES if k not in f.files]
            if missing:
                raise DataError(f"{path}: missing array(s) {', '.join(missing)} (has {', '.join(f.files) or 'none'})")
            arrays = {k: f[k] for k in IDX_FILES}
    except DataError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        size = path.stat().st_size if path.exists() else 0
        what = "is empty" if size == 0 else f"is not a readable .npz file (truncated or corrupt: {e})"
        raise DataError(f"{path}: {what}") from None
    return _check_arrays(arrays, str(path))


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
            raise DataError(f"{folder}: no {stem}[.gz] file (a folder needs the four MNIST IDX files)")
        is_image = key.startswith("x")
        arrays[key] = _read_idx_file(path, IMAGE_MAGIC if is_image else LABEL_MAGIC, 3 if is_image else 1)
    return _check_arrays(arrays, str(folder))


def read_path(path: str | Path) -> dict[str, np.ndarray]:
    """Read an explicit MNIST location: an .npz file or a folder of IDX files."""
    path = Path(path).expanduser()
    if not path.exists():
        raise DataError(f"{path}: no such file or folder")
    return read_idx_folder(path) if path.is_dir() else read_npz(path)


def _keras_download(timeout: float = 3.0) -> dict[str, np.ndarray] | None:
    """The Keras cache, or its download when the network answers within `timeout` seconds."""
    if not KERAS_CACHE.is_file():
        try:
            socket.create_connection(DOWNLOAD_HOST, timeout=timeout).close()
        except OSError:
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


def load_mnist(path: str | Path | None = None, train_limit: int | None = None) -> Dataset:
    """Load MNIST as float32 images in [0, 1] with uint8 labels (see the module docstring).

    `train_limit` keeps only the first N training images; a limit larger than the training set
    gives a warning and the whole set.
    """
    path = path or os.environ.get("MNIST_PATH") or None
    if path:
        arrays, source = read_path(path), str(path)
    else:
        arrays, source = _keras_download(), f"the Keras download ({KERAS_CACHE})"
        if arrays is None:
            arrays = read_npz(SAMPLE_PATH)
            source = f"the bundled sample {SAMPLE_PATH.name} (offline: set MNIST_PATH for the full set)"
            warn(
                "MNIST could not be downloaded and MNIST_PATH is not set: using the bundled sample of "
                f"{len(arrays['x_train']):,} training and {len(arrays['x_test']):,} test digits"
            )
    if train_limit is not None:
        if train_limit > len(arrays["x_train"]):
            n = len(arrays["x_train"])
            warn(f"TRAIN_LIMIT={train_limit} is larger than the {n:,} training images: using them all")
        arrays["x_train"] = arrays["x_train"][:train_limit]
        arrays["y_train"] = arrays["y_train"][:train_limit]
    return Dataset(
        x_train=arrays["x_train"].astype(np.float32) / np.float32(255),
        y_train=arrays["y_train"],
        x_test=arrays["x_test"].astype(np.float32) / np.float32(255),
        y_test=arrays["y_test"],
        source=source,
    )
