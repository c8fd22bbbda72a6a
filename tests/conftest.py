"""Shared helpers: the project root on sys.path, the bundled sample, and running a script."""

import importlib.util
import os
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

SAMPLE = ROOT / "common" / "mnist_sample.npz"
SHARED_MNIST = ROOT.parent / "shared" / "data" / "mnist.npz"


def load_script(name: str):
    """Import a numbered script (its file name starts with a digit) as a module."""
    path = ROOT / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name.replace("-", "_"), path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def sample_arrays():
    with np.load(SAMPLE) as f:
        return {k: f[k] for k in f.files}
