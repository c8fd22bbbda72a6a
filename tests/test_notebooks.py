"""Every numbered script opens as a notebook: `# %%` cells at its `## Section` strings, each cell
valid Python on its own, run one after another in a kernel whose command line is not the
script's."""

import ast
import re
import sys

import pytest

from conftest import ROOT, SAMPLE, SCRIPTS


def cells(path):
    return re.split(r"(?m)^# %%.*\n", path.read_text())


@pytest.mark.parametrize("path", SCRIPTS, ids=lambda p: p.stem)
def test_every_section_starts_a_cell_that_parses_on_its_own(path):
    parts = cells(path)
    sections = re.findall(r'(?m)^"""\n(## .*)', path.read_text())
    assert len(sections) >= 3
    for part in parts[1:]:
        ast.parse(part)  # a cell never cuts a function or a block in two
    starts = [re.match(r'"""\n(## .*)', part) for part in parts]
    assert [m.group(1) for m in starts if m] == sections  # every section string opens a cell


def test_chapter_01_runs_cell_by_cell_like_a_notebook(tmp_path, monkeypatch):
    # the kernel's, not ours
    monkeypatch.setattr(sys, "argv", ["ipykernel_launcher.py", "-f", "kernel.json"])
    monkeypatch.chdir(ROOT)
    namespace = {
        "__name__": "__main__",
        "__vsc_ipynb_file__": str(ROOT / "01_basic_autoencoder.ipynb"),
    }
    first, *rest = cells(ROOT / "01_basic_autoencoder.py")[1:]
    exec(first, namespace)  # imports and hyperparameters
    # what a reader does in a notebook: edit the constants, then run the next cells
    namespace.update(DATA=str(SAMPLE), TRAIN_LIMIT=500, EPOCHS=1, OUTPUT_DIR=str(tmp_path))
    for cell in rest:
        exec(cell, namespace)
    metrics = namespace["metrics"]
    assert metrics["n_train"] == 500 and metrics["settings"]["EPOCHS"] == 1
    assert (tmp_path / "reconstructions.png").exists() and (tmp_path / "model.keras").exists()
