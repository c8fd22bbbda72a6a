"""The README's code runs as written."""

import re

from common.outputs import save_model
from common.script import run_chapter

import numpy as np
import pytest
from skimage import io

from conftest import CHAPTERS, ROOT, SAMPLE, load_script


def readme_block(containing: str, page: str = "README.md") -> str:
    blocks = re.findall(r"```python\n(.*?)```", (ROOT / page).read_text(), flags=re.S)
    matching = [b for b in blocks if containing in b]
    assert len(matching) == 1, f"expected one python block with {containing!r}"
    return matching[0]


def test_denoising_an_image_of_ones_own(tmp_path, monkeypatch):
    code = readme_block("my_digit.png", "docs/your_own_images.md")
    model_path = tmp_path / "outputs" / "03_masking_denoising" / "model.keras"
    model_path.parent.mkdir(parents=True)
    chapter = load_script("03_masking_denoising")
    save_model(chapter.build_denoiser((8, 16), 16, 28, "denoiser"), model_path)
    with np.load(SAMPLE) as f:
        digit = f["x_test"][0]
    # a photo-like version: 84x84, colour, dark ink on white paper
    big = np.kron(255 - digit, np.ones((3, 3), np.uint8))
    io.imsave(tmp_path / "my_digit.png", np.stack([big] * 3, axis=-1), check_contrast=False)
    monkeypatch.chdir(tmp_path)
    namespace = {}
    exec(code, namespace)
    image, denoised = namespace["image"], namespace["denoised"]
    assert image.shape == (28, 28) and image.dtype == np.float32
    assert image.mean() < 0.5  # inverted to light strokes on dark, like MNIST
    # the same digit after all conversions
    assert np.corrcoef(image.ravel(), digit.ravel())[0, 1] > 0.9
    assert denoised.shape == (28, 28) and 0 <= denoised.min() and denoised.max() <= 1
    saved = io.imread(tmp_path / "my_digit_denoised.png")
    assert saved.shape == (28, 28) and saved.dtype == np.uint8


@pytest.mark.slow
def test_the_walk_through_with_a_folder_of_ones_own_images(tmp_path, monkeypatch):
    code = readme_block('Path("my_images")', "docs/your_own_images.md")
    (tmp_path / "common").mkdir()
    (tmp_path / "common" / "mnist_sample.npz").symlink_to(SAMPLE)
    monkeypatch.chdir(tmp_path)
    exec(code, {})
    folder = tmp_path / "my_images"
    assert sorted(p.name for p in folder.iterdir()) == [f"digit_{d}" for d in range(10)]
    assert len(list(folder.rglob("*.png"))) == 1200
    assert io.imread(next(folder.rglob("*.png"))).shape == (56, 56)

    first = run_chapter(
        ROOT / "01_basic_autoencoder.py", [f"--data={folder}", "--epochs=1", "--output_dir=out01"]
    )
    assert first["n_train"] == 960 and first["n_test"] == 240
    fifth = run_chapter(
        ROOT / "05_stacked_autoencoder.py",
        [
            f"--data={folder}",
            "--validation_size=200",
            "--few_labels=(100,)",
            "--hidden_units=(32,16)",
            "--pretrain_epochs=1",
            "--epochs=1",
            "--few_label_probe_steps=5",
            "--few_label_steps=5",
            "--output_dir=out05",
        ],
    )
    assert fifth["n_train"] == 760 and set(fifth["few_labels"]) == {"100"}
    assert (tmp_path / "out05" / "model.keras").exists()
    sixth = run_chapter(
        ROOT / "06_deep_autoencoder.py",
        [
            f"--data={folder}",
            "--hidden_units=(32,16)",
            "--code_dim=4",
            "--pretrain_epochs=1",
            "--epochs=1",
        ]
        + ["--output_dir=out06"],
    )
    assert sixth["n_train"] == 960 and sixth["n_test"] == 240
    assert (tmp_path / "out06" / "model.keras").exists()


README = (ROOT / "README.md").read_text(encoding="utf-8")


def test_every_picture_shown_exists_and_every_picture_kept_is_shown():
    pages = {ROOT / "README.md": README}
    pages |= {path: path.read_text(encoding="utf-8") for path in (ROOT / "docs").glob("*.md")}
    shown = set()
    for page, text in pages.items():
        for target in re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text):
            picture = (page.parent / target).resolve()
            assert picture.is_file(), f"{page.name} shows {target}, which does not exist"
            shown.add(picture)
    kept = {path.resolve() for path in (ROOT / "docs" / "images").glob("*.png")}
    assert not kept - shown, f"pictures no page shows: {sorted(p.name for p in kept - shown)}"


def test_each_chapters_time_in_the_table_is_the_one_on_its_command():
    rows = re.findall(
        r"^\| \[(\d\d)\]\(#[^)]*\) `\d\d_\w+\.py` \|.*\| ([\d.]+) min \|$", README, flags=re.M
    )
    assert [chapter for chapter, _ in rows] == [path.name[:2] for path in CHAPTERS]
    for chapter, minutes in rows:
        command = re.search(
            rf"^python {chapter}_\w+\.py +# about ([\d.]+) minutes?$", README, flags=re.M
        )
        assert command, f"{chapter}: its full run's command, with '# about N minutes'"
        assert command.group(1) == minutes, (
            f"{chapter}: {minutes} min in the table, {command.group(1)} on the command"
        )


def test_the_readme_is_a_guide_not_a_lab_notebook():
    assert len(README) <= 30_000
    assert "GFLOP" not in README
    assert len(re.findall(r"\bmachines?\b", README, flags=re.I)) <= 3
