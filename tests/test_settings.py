"""Every chapter has the settings the README says it has, under the same names, and `--help` gives
every setting of every chapter a one-line description."""

import re

from common.hyperparams import help_text, hyperparameters
from common.script import chapter_definitions

import pytest

from conftest import CHAPTERS, ROOT, SCRIPTS

README = (ROOT / "README.md").read_text(encoding="utf-8")


def settings_of(path):
    namespace = vars(chapter_definitions(path))
    return namespace, hyperparameters(namespace)


def test_the_chapters_are_numbered_in_reading_order_with_no_gap():
    assert len(CHAPTERS) >= 10
    assert [p.name[:2] for p in CHAPTERS] == [f"{n:02d}" for n in range(1, len(CHAPTERS) + 1)]


def test_what_the_readme_says_every_chapter_has_every_chapter_has():
    sentence = re.search(
        r"Every chapter has (`[A-Z_]+`(?:, `[A-Z_]+`)*(?:,)? and `[A-Z_]+`)\.", README
    )
    assert sentence, "the README's 'Every chapter has ...' sentence"
    names = re.findall(r"`([A-Z_]+)`", sentence.group(1))
    assert {"EPOCHS", "BATCH_SIZE", "LEARNING_RATE", "SEED", "DATA", "OUTPUT_DIR"} <= set(names)
    for path in CHAPTERS:
        _, settings = settings_of(path)
        missing = [name for name in names if name not in settings]
        assert not missing, f"{path.name} lacks {missing}"


def test_the_readme_table_of_settings_names_exactly_the_chapters_that_have_them():
    rows = re.findall(r"^\| `([A-Z_]+)` \| ((?:\d\d, )*\d\d) \|", README, flags=re.M)
    assert {name for name, _ in rows} >= {"VALIDATION_SIZE", "CODE_DIM", "STRATEGY", "TENSORBOARD"}
    for name, chapters in rows:
        listed = set(chapters.split(", "))
        having = {path.name[:2] for path in CHAPTERS if name in settings_of(path)[1]}
        assert having == listed, (
            f"{name}: the README lists {sorted(listed)}, the chapters that have it are "
            f"{sorted(having)}"
        )


def test_one_name_for_one_thing():
    # held-out images, the code's size and the steps of the main training go by one name everywhere
    retired = {
        "HOLDOUT",
        "HELD_OUT",
        "HELD_OUT_MAX",
        "VALIDATION_FRACTION",
        "VALIDATION_LIMIT",
        "CODE_UNITS",
    }
    retired |= {"FINETUNE_EPOCHS", "FINETUNE_BATCH_SIZE", "FINETUNE_LEARNING_RATE", "DEEP_EPOCHS"}
    for path in CHAPTERS:
        _, settings = settings_of(path)
        assert not retired & set(settings), f"{path.name}: {retired & set(settings)}"
    for path in CHAPTERS:
        assert "def pca_reconstruct" not in path.read_text(encoding="utf-8"), (
            f"{path.name}: PCA lives in common/pca.py"
        )


@pytest.mark.parametrize("path", SCRIPTS, ids=lambda p: p.stem)
def test_every_setting_has_a_one_line_description_in_help(path):
    namespace, settings = settings_of(path)
    lines = help_text(namespace).splitlines()
    for name, value in settings.items():
        line = next((line for line in lines if line.startswith(f"  --{name.lower()} ")), None)
        assert line is not None, f"{path.name}: --{name.lower()} missing from --help"
        description = line[len(f"  --{name.lower()} ") :].strip()[len(repr(value)) :].strip()
        assert len(description) > 10, f"{path.name}: --{name.lower()} has no description in --help"
