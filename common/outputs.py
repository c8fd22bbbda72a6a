"""Where a run's files go, written so that nothing is ever left half-written.

Each script writes to `outputs/<script name>/` (its `OUTPUT_DIR` setting changes that). The folder
is created and checked for writing before training starts, and every file is first written under
a temporary name in the same folder and then renamed into place: a run that is interrupted
leaves the previous complete file, or none, never a truncated one.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from common.errors import MissingChapterError, OutputError

import numpy as np

PROJECT_ROOT = Path(__file__).resolve().parent.parent
saved_this_run: list[Path] = []  # every file written by save_* since the run started


def output_dir(script_file: str, setting: str | None = None) -> Path:
    """The folder for a script's outputs, created and checked for writing now."""
    folder = (
        Path(setting).expanduser() if setting else PROJECT_ROOT / "outputs" / Path(script_file).stem
    )
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".write-check-"):
            pass
    except OSError as e:
        raise OutputError(
            f"output folder {folder}: cannot be created or written ({e.strerror or e})"
        ) from None
    return folder


@contextlib.contextmanager
def atomic_path(path: str | Path, record: bool = True) -> Iterator[Path]:
    """Yield a temporary path beside `path` (same suffix); rename it onto `path` on success.
    With `record`, the file counts among what this run saved (the Ctrl-C message lists them)."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=path.suffix)
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes the file private; give it the usual mode
        os.replace(tmp, path)
        if record:
            saved_this_run.append(path)
    finally:
        tmp.unlink(missing_ok=True)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _plain(value: Any) -> Any:
    """JSON-friendly copy: NumPy scalars to Python numbers, NaN/inf to None, tuples to lists."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if hasattr(value, "item") and getattr(value, "ndim", 1) == 0:
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Path):
        return str(value)
    return value


def save_json(path: str | Path, data: dict[str, Any]) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(_plain(data), indent=2) + "\n", encoding="utf-8")
    return Path(path)


def save_figure(fig: Any, path: str | Path) -> Path:
    """Save a Matplotlib figure as PNG and close it."""
    import matplotlib.pyplot as plt  # noqa: PLC0415

    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return Path(path)


def save_model(model: Any, path: str | Path) -> Path:
    """Save a Keras model (the `.keras` format)."""
    with atomic_path(path) as tmp:
        model.save(tmp)
    return Path(path)


def save_arrays(path: str | Path, **arrays: Any) -> Path:
    """Save NumPy arrays under their names in one `.npz` file (`np.load` reads them back)."""
    with atomic_path(path) as tmp, tmp.open("wb") as f:
        np.savez(f, **arrays)
    return Path(path)


def chapter_files(chapter: str, folder: str | Path | None, *names: str) -> list[Path]:
    """The files `names` that the chapter `chapter` (e.g. "07_anomaly_detection") saved in `folder`
    (None: outputs/<chapter>), for a script that goes further from them; a one-line error naming
    the first missing file and the command that makes it."""
    where = Path(folder).expanduser() if folder else PROJECT_ROOT / "outputs" / chapter
    paths = [where / name for name in names]
    for path in paths:
        if not path.is_file():
            raise MissingChapterError(
                f"{path}: not found; `python {chapter}.py` makes it (with the same data settings)"
            )
    return paths
