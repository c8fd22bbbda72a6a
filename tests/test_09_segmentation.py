"""Chapter 09, segmentation: the scene maker (labels exactly where strokes are, test scenes from
test images only), the IoU against `keras.metrics.MeanIoU`, the script end to end on the bundled
sample (offline, at its defaults but for sizes) and on a folder of 60x60 image-mask pairs, its saved
model giving the printed IoU, resuming after Ctrl-C, and one clear line for every broken mask
folder; further/09_few_masks end to end from the chapter's saved U-Net and scenes, and one line
when the chapter has not been run."""

import json
import runpy
import sys

from common import data as data_module
from common.data import TEST_SEED
from common.errors import DataError, MissingChapterError
from common.masks import read_mask_folder
from common.scenes import make_scenes

import keras
import numpy as np
import pytest
from skimage import io

from conftest import ROOT, SAMPLE, load_script

PNG = b"\x89PNG\r\n\x1a\n"
CHAPTER = load_script("09_segmentation")
FEW_MASKS = load_script("further/09_few_masks")
TINY = [
    "--image_size=32",
    "--filters=(4,8)",
    "--scenes_per_epoch=200",
    "--test_scenes=60",
    "--epochs=1",
    "--batch_size=20",
]
FIGURES = ["scenes.png", "worst.png", "iou_per_class.png"]
TINY_FEW_MASKS = [
    "--scenes_per_epoch=200",
    "--batch_size=20",
    "--few_masks=(10,)",
    "--few_mask_draws=1",
    "--few_mask_steps=4",
]


def digits(n, seed=0):
    with np.load(SAMPLE) as f:
        return f["x_train"][:n].astype(np.float32) / 255, f["y_train"][:n]


def test_a_pixel_is_labelled_with_the_digit_whose_stroke_covers_it_or_background():
    images, labels = digits(300)
    scenes, masks = make_scenes(images, labels, 400, 48, 3, np.random.default_rng(0))
    assert (
        scenes.shape == (400, 48, 48, 1)
        and masks.shape == (400, 48, 48)
        and masks.dtype == np.uint8
    )
    scenes = scenes[..., 0]
    # digits never overlap, so a pixel is stroke exactly where the scene is above 0.5
    assert np.array_equal(masks > 0, scenes > 0.5)
    assert 0 <= scenes.min() and scenes.max() <= 1 and masks.max() <= 10
    # one digit alone: its mask is its label + 1 on its stroke, found where the scene holds that
    # digit, and all its ink is on the canvas (its blank border may not be)
    single, single_masks = make_scenes(images[:1], labels[:1], 50, 48, 1, np.random.default_rng(1))
    ink_rows, ink_cols = np.nonzero(images[0].any(axis=1))[0], np.nonzero(images[0].any(axis=0))[0]
    for scene, mask in zip(single[..., 0], single_masks):
        rows, cols = np.nonzero(scene)
        top, left = rows.min() - ink_rows[0], cols.min() - ink_cols[0]
        # room for the image's border off the canvas
        padded = np.zeros((48 + 56, 48 + 56), np.float32)
        padded[28 + top : 28 + top + 28, 28 + left : 28 + left + 28] = images[0]
        placed = padded[28:76, 28:76]
        assert placed.sum() == pytest.approx(images[0].sum())
        assert np.array_equal(scene, placed)
        assert np.array_equal(mask, np.where(placed > 0.5, labels[0] + 1, 0))


def test_scenes_hold_between_one_and_most_objects_digits_that_never_overlap():
    images, labels = digits(1)
    scenes, masks = make_scenes(images, labels, 300, 48, 3, np.random.default_rng(2))
    # the same digit pasted k times without overlap: k times its ink and k times its stroke, exactly
    copies = scenes[..., 0].sum(axis=(1, 2)) / images[0].sum()
    assert np.allclose(copies, np.round(copies), atol=1e-4)
    assert np.array_equal((masks > 0).sum(axis=(1, 2)), np.round(copies) * (images[0] > 0.5).sum())
    # one, two and three digits all occur
    assert set(np.round(copies).astype(int).tolist()) == {1, 2, 3}
    assert set(np.unique(masks)) == {0, labels[0] + 1}


def test_iou_per_class_agrees_with_keras_mean_iou():
    rng = np.random.default_rng(3)
    true = rng.integers(0, 5, size=(20, 16, 16)).astype(np.uint8)
    predicted = np.where(
        rng.random(true.shape) < 0.6, true, rng.integers(0, 5, size=true.shape)
    ).astype(np.uint8)
    predicted[predicted == 4] = 3  # class 4 is never predicted: its IoU is 0, not undefined
    iou = CHAPTER.iou_per_class(CHAPTER.confusion_matrix(true, predicted, 5))
    reference = keras.metrics.MeanIoU(num_classes=5)
    reference.update_state(true.ravel(), predicted.ravel())
    assert iou.mean() == pytest.approx(float(reference.result()), abs=1e-6)
    assert iou[4] == 0
    for c in range(5):  # and class by class, by counting pixels
        both, either = (
            np.sum((true == c) & (predicted == c)),
            np.sum((true == c) | (predicted == c)),
        )
        assert iou[c] == pytest.approx(both / either)
    # absent: undefined
    assert np.isnan(CHAPTER.iou_per_class(CHAPTER.confusion_matrix(true, predicted, 6))[5])


def run_namespace(argv):
    """The chapter run in this process, returning every name it defined (its scenes among them)."""
    saved = sys.argv
    sys.argv = [str(CHAPTER.path), *argv]
    try:
        return runpy.run_path(str(CHAPTER.path), run_name="__main__")
    finally:
        sys.argv = saved
        sys.excepthook = sys.__excepthook__


@pytest.fixture(scope="module")
def sample_run(tmp_path_factory):
    """Train and test images told apart by their grey levels: every training stroke 0.6, every test
    one 1."""
    folder = tmp_path_factory.mktemp("segmentation")
    with np.load(SAMPLE) as f:
        x_train, y_train, x_test, y_test = (
            f[k] for k in ("x_train", "y_train", "x_test", "y_test")
        )
    x_train = np.where(x_train > 127, 153, 0).astype(np.uint8)[:600]
    x_test = np.where(x_test > 127, 255, 0).astype(np.uint8)
    np.savez(
        folder / "digits.npz", x_train=x_train, y_train=y_train[:600], x_test=x_test, y_test=y_test
    )
    out = folder / "out"
    namespace = run_namespace([f"--data={folder / 'digits.npz'}", *TINY, f"--output_dir={out}"])
    return out, namespace, (x_test.astype(np.float32) / 255, y_test)


def test_test_scenes_come_from_test_images_and_training_scenes_from_training_images(sample_run):
    _, ns, _ = sample_run
    data = ns["data"]
    assert set(np.unique(data.x_test)) == {0.0, 1.0}  # test strokes only
    drawn, _ = data.draw(np.random.default_rng(0), 50)
    assert np.unique(drawn).tolist() == pytest.approx([0, 0.6])  # training strokes only
    # validation: held-out training images
    assert np.unique(data.x_val).tolist() == pytest.approx([0, 0.6])


def test_the_chapter_end_to_end_on_the_sample(sample_run):
    out, ns, (x_test, y_test) = sample_run
    saved = json.loads((out / "metrics.json").read_text())
    for name in FIGURES:
        assert (out / name).read_bytes()[:8] == PNG and (out / name).stat().st_size > 2000, name
    # backups and temporary files gone
    assert not [p.name for p in out.iterdir() if p.name.startswith(".")]
    assert (
        saved["classes"] == ["background", *[str(d) for d in range(10)]] and saved["n_test"] == 60
    )
    for network in ("unet", "encoder_decoder"):
        r = saved[network]
        assert set(r) == {
            "iou_per_class",
            "mean_iou",
            "background_iou",
            "pixel_accuracy",
            "validation_mean_iou",
        }
        digit_ious = [
            v for k, v in r["iou_per_class"].items() if k != "background" and v is not None
        ]
        assert r["mean_iou"] == pytest.approx(np.mean(digit_ious))
        assert 0 <= r["mean_iou"] <= 1 and 0 < r["pixel_accuracy"] <= 1
    # the saved model, reloaded, gives the printed IoU on the same test scenes, remade from the test
    # images
    model = keras.models.load_model(out / "model.keras")
    scenes, masks = make_scenes(x_test, y_test, 60, 32, 3, np.random.default_rng(TEST_SEED))
    assert np.array_equal(scenes, ns["data"].x_test)
    probabilities = model.predict(scenes, verbose=0)
    assert probabilities.shape == (60, 32, 32, 11) and np.allclose(
        probabilities.sum(axis=-1), 1, atol=1e-4
    )
    predicted = probabilities.argmax(axis=-1)
    reference = keras.metrics.MeanIoU(num_classes=11)
    reference.update_state(masks.ravel(), predicted.ravel())
    confusion = reference.total_cm.numpy()
    iou = np.diag(confusion) / (confusion.sum(0) + confusion.sum(1) - np.diag(confusion))
    assert saved["unet"]["mean_iou"] == pytest.approx(np.nanmean(iou[1:]), abs=1e-6)
    assert saved["unet"]["pixel_accuracy"] == pytest.approx(np.mean(predicted == masks), abs=1e-6)


def scene_folder(folder, n=40, size=60, values=(0, 1, 2)):
    """`n` image-mask pairs of size x size: a bright square (class values[1]) and a dimmer disc
    (values[2])."""
    rng = np.random.default_rng(0)
    (folder / "images").mkdir(parents=True)
    (folder / "masks").mkdir()
    yy, xx = np.mgrid[:size, :size]
    for i in range(n):
        image, mask = np.zeros((size, size), np.uint8), np.full((size, size), values[0], np.uint8)
        r, c = rng.integers(5, size - 20, 2)
        image[r : r + 12, c : c + 12], mask[r : r + 12, c : c + 12] = 250, values[1]
        r, c = rng.integers(10, size - 10, 2)
        disc = (yy - r) ** 2 + (xx - c) ** 2 < 36
        image[disc], mask[disc] = 120, values[2]
        io.imsave(folder / "images" / f"scene{i:02d}.png", image, check_contrast=False)
        io.imsave(folder / "masks" / f"scene{i:02d}.png", mask, check_contrast=False)
    return folder


@pytest.mark.slow
def test_a_folder_of_60x60_image_mask_pairs_just_works(tmp_path, capsys):
    folder = scene_folder(tmp_path / "mine", values=(0, 3, 7))
    out = tmp_path / "out"
    metrics = CHAPTER.main(
        [
            f"--data={folder}",
            "--filters=(4,8,16,32)",
            "--epochs=2",
            "--scenes_per_epoch=160",
            "--batch_size=8",
            f"--output_dir={out}",
        ]
    )
    printed = capsys.readouterr().out
    assert "padded to 64x64" in printed
    assert metrics["classes"] == ["background", "class 3", "class 7"]
    assert metrics["n_test"] == 8
    model = keras.models.load_model(out / "model.keras")
    assert model.output_shape == (None, 64, 64, 3)
    # the few-mask script on the folder's training pairs (fewer than 100): 100 skipped, 10 run
    few = FEW_MASKS.main(
        [
            *TINY_FEW_MASKS[:2],
            "--few_masks=(10,100)",
            "--few_mask_steps=4",
            f"--chapter_dir={out}",
            f"--output_dir={tmp_path / 'few'}",
        ]
    )
    assert "100 skipped" in capsys.readouterr().out
    assert list(few["few_masks"]) == ["10"]


@pytest.mark.parametrize(
    "breakage, words",
    [
        (lambda f: __import__("shutil").rmtree(f / "masks"), ["no masks/ folder beside images/"]),
        (
            lambda f: (f / "masks" / "scene03.png").unlink(),
            ["scene03.png", "no mask of the same name"],
        ),
        (
            lambda f: io.imsave(f / "masks" / "extra.png", np.zeros((60, 60), np.uint8)),
            ["extra.png", "no image of the same name"],
        ),
        (
            lambda f: io.imsave(
                f / "masks" / "scene05.png", np.zeros((50, 60), np.uint8), check_contrast=False
            ),
            ["scene05.png", "60x50 pixels, its image 60x60"],
        ),
        (
            lambda f: io.imsave(
                f / "images" / "scene07.png", np.zeros((50, 50), np.uint8), check_contrast=False
            ),
            ["scene07.png", "all images must be one size"],
        ),
        (
            lambda f: io.imsave(
                f / "masks" / "scene09.png", np.full((60, 60), 255, np.uint8), check_contrast=False
            ),
            ["scene09.png", "255", "class numbers 0 to 63"],
        ),
    ],
    ids=[
        "no masks folder",
        "missing mask",
        "mask without image",
        "mask size",
        "image size",
        "mask value",
    ],
)
def test_a_broken_mask_folder_is_one_line_naming_the_file(tmp_path, breakage, words):
    folder = scene_folder(tmp_path / "mine", n=12)
    breakage(folder)
    with pytest.raises(DataError) as error:
        read_mask_folder(folder)
    for word in words:
        assert word in str(error.value)
    assert "\n" not in str(error.value)


def test_the_script_says_it_in_one_line_and_writes_nothing(tmp_path):
    import subprocess  # noqa: PLC0415

    folder = scene_folder(tmp_path / "mine", n=12)
    (folder / "masks" / "scene04.png").unlink()
    out = tmp_path / "out"
    result = subprocess.run(
        [sys.executable, "09_segmentation.py", f"--data={folder}", f"--output_dir={out}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert (
        result.stderr.strip().splitlines()[-1].startswith("error: ")
        and "scene04.png" in result.stderr
    )
    assert not [p for p in out.rglob("*") if p.is_file()]


@pytest.mark.parametrize(
    "script, setting",
    [
        ("09_segmentation.py", "--batch_size=0"),
        ("09_segmentation.py", "--scenes_per_epoch=2.5"),
        ("further/09_few_masks.py", "--few_mask_steps=0"),
    ],
)
def test_a_count_that_is_not_a_whole_number_is_one_line_naming_the_setting(
    tmp_path, script, setting
):
    import subprocess  # noqa: PLC0415

    out = tmp_path / "out"
    command = [sys.executable, script, setting, f"--output_dir={out}"]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and setting.lstrip("-").split("=")[0] in last.lower()
    assert not [p for p in out.rglob("*") if p.is_file()]


@pytest.mark.slow
def test_offline_at_its_defaults_and_a_rerun_after_ctrl_c_loads_the_networks_already_trained(
    tmp_path, monkeypatch
):
    fits = []
    real = keras.Model.fit

    def interrupted_at_the_second(self, *args, **kwargs):
        if len(fits) == 1 and interrupt:
            raise KeyboardInterrupt
        fits.append(self.name)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(keras.Model, "fit", interrupted_at_the_second)
    # no data named, no MNIST_PATH, offline: scenes from the bundled sample's digits
    monkeypatch.delenv("MNIST_PATH", raising=False)
    monkeypatch.setattr(data_module, "KERAS_CACHE", tmp_path / "no-cache" / "mnist.npz")
    monkeypatch.setattr(data_module, "_online", lambda timeout: False)
    argv = ["--train_limit=400", *TINY, f"--output_dir={tmp_path / 'out'}"]
    interrupt = True
    with pytest.raises(KeyboardInterrupt):
        CHAPTER.main(argv)
    assert (
        fits == ["encoder_decoder_segmenter"]
        and len(list((tmp_path / "out" / ".resume").glob("*/*.pkl"))) == 1
    )
    fits.clear()
    interrupt = False
    metrics = CHAPTER.main(argv)
    # loaded, not trained again
    assert fits[0] == "unet_segmenter" and "encoder_decoder_segmenter" not in fits
    assert not (tmp_path / "out" / ".resume").exists()
    assert "bundled sample" in metrics["data"]


def test_the_few_mask_script_end_to_end_from_the_chapters_u_net_and_scenes(sample_run, tmp_path):
    chapter_out, ns, _ = sample_run
    out = tmp_path / "out"
    metrics = FEW_MASKS.main(
        [*TINY_FEW_MASKS, f"--chapter_dir={chapter_out}", f"--output_dir={out}"]
    )
    saved = json.loads((out / "metrics.json").read_text())
    for name in ("few_masks.png", "denoised.png"):
        assert (out / name).read_bytes()[:8] == PNG and (out / name).stat().st_size > 2000, name
    assert not [p.name for p in out.iterdir() if p.name.startswith(".")]
    # the chapter's scenes (from its data settings), and its U-Net scoring as the chapter printed
    assert saved["data"] == ns["data"].source
    chapter = json.loads((chapter_out / "metrics.json").read_text())
    assert saved["chapter_unet_mean_iou"] == pytest.approx(chapter["unet"]["mean_iou"], abs=1e-6)
    few = saved["few_masks"]["10"]
    assert len(few["pretrained"]["draws"]) == 1 and len(few["random"]["draws"]) == 1
    if few["random"]["mean"] >= 0.01:
        assert few["gain"] == pytest.approx(
            (few["pretrained"]["mean"] - few["random"]["mean"]) / few["random"]["mean"]
        )
    else:  # a ratio to a random start that learned almost nothing is not given
        assert few["gain"] is None
    assert metrics["few_masks"]["10"]["pretrained"]["mean"] == pytest.approx(
        few["pretrained"]["mean"]
    )
    # the pretrained denoiser: one channel in [0, 1] at every pixel of the chapter's scenes
    denoiser = keras.models.load_model(out / "denoiser.keras")
    assert denoiser.output_shape == (None, 32, 32, 1)


def test_the_few_mask_script_without_the_chapters_files_says_which_command_makes_them(tmp_path):
    with pytest.raises(MissingChapterError) as error:
        FEW_MASKS.main([f"--chapter_dir={tmp_path / 'none'}", f"--output_dir={tmp_path / 'out'}"])
    assert "python 09_segmentation.py" in str(error.value) and "\n" not in str(error.value)
