"""Resuming a run made of many trainings, stage by stage.

A run made of many trainings (chapter 05's, at its default settings, makes 27: six pretrained
layers, three classifiers on all the labels and eighteen on few; 06's, four layers and a
fine-tuning; 07's, one detector per class; 09's, two segmenters, a denoiser and twelve few-mask
fine-tunings; 10's, its sparse autoencoders, a dense one and the linear classifiers) keeps what
each finished stage produced (weights, histories, figures) in a backup folder inside its output
folder. Run the same command again after Ctrl-C and the finished stages are loaded instead of
trained again; the folder is removed once the run has saved its results.

Every stage seeds the random generators from SEED and its own name before it starts, so a stage
starts from the same random state whether the stages before it were trained now or loaded: a run
resumed between stages gives the figures of an uninterrupted one.
"""

from __future__ import annotations

import contextlib
import pickle
import shutil
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from common import devices
from common.outputs import atomic_path

T = TypeVar("T")


class Stages:
    """The finished stages of one run, kept in `folder` (see `training.backup_folder`)."""

    def __init__(self, folder: Path, seed: int) -> None:
        self.folder = Path(folder)
        self.seed = seed
        if self.folder.is_dir() and any(self.folder.glob("*.pkl")):
            print(f"resuming: stages finished by an earlier run are loaded from {self.folder}")

    def run(self, name: str, compute: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """The result of stage `name`: loaded if an earlier run finished it, else computed as
        `compute(*args, **kwargs)` (with the random generators seeded for this stage) and kept."""
        path = self.folder / f"{name}.pkl"
        if path.exists():
            with path.open("rb") as f:
                return pickle.load(f)
        devices.set_random_seed(self.stage_seed(name))
        result = compute(*args, **kwargs)
        self.folder.mkdir(parents=True, exist_ok=True)
        with atomic_path(path, record=False) as tmp, tmp.open("wb") as f:  # a backup, not a result
            pickle.dump(result, f)
        return result

    def stage_seed(self, name: str) -> int:
        return (self.seed * 1_000_003 + zlib.crc32(name.encode())) % 2**31

    def subfolder(self, name: str) -> Path:
        """A folder for the epoch-by-epoch backup of a stage that trains for long."""
        return self.folder / name

    def finished(self) -> None:
        """The run has saved its results: the backup is no longer needed."""
        shutil.rmtree(self.folder, ignore_errors=True)
        with contextlib.suppress(OSError):
            self.folder.parent.rmdir()  # only if no other backup is left in it
