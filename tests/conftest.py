"""Shared helpers: the project root on sys.path, the bundled sample, and running a script."""

import os
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

SAMPLE = ROOT / "common" / "mnist_sample.npz"
CHAPTERS = sorted(ROOT.glob("[0-9][0-9]_*.py"))  # every numbered chapter
FURTHER = sorted((ROOT / "further").glob("*.py"))  # every script that goes further
SCRIPTS = CHAPTERS + FURTHER


def chapter_of(path: Path) -> Path:
    """The chapter a script that goes further starts from: the one of the same number."""
    return next(chapter for chapter in CHAPTERS if chapter.name[:3] == path.name[:3])


SHARED_MNIST = ROOT.parent / "shared" / "data" / "mnist.npz"


class Chapter:
    """A numbered script: `.main(argv)` runs it in-process and returns its metrics; its constants
    and functions are attributes (read without running it)."""

    def __init__(self, name: str):
        self.path = ROOT / f"{name}.py"
        self._definitions = None

    def main(self, argv: list[str] | None = None) -> dict:
        from common.script import run_chapter  # noqa: PLC0415

        return run_chapter(self.path, argv)

    def __getattr__(self, name: str):
        from common.script import chapter_definitions  # noqa: PLC0415

        if self._definitions is None:
            self._definitions = chapter_definitions(self.path)
        return getattr(self._definitions, name)


def load_script(name: str) -> Chapter:
    return Chapter(name)


@pytest.fixture
def sample_arrays():
    with np.load(SAMPLE) as f:
        return {k: f[k] for k in f.files}
