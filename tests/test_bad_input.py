"""Every kind of bad input stops a script with one clear line and exit status 2, no traceback."""

import gzip

from common import script

import numpy as np
import pytest

from conftest import SAMPLE, load_script

CH01 = load_script("01_basic_autoencoder")
CH02 = load_script("02_gaussian_denoising")
CH03 = load_script("03_masking_denoising")
CH04 = load_script("04_salt_pepper_denoising")


def run_and_capture(chapter, args, capsys, tmp_path):
    with pytest.raises(SystemExit) as caught:
        script.run(lambda: chapter.main([*args, f"--output_dir={tmp_path / 'out'}"]))
    assert caught.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = [line for line in err.strip().splitlines() if not line.startswith("warning:")]
    assert len(lines) == 1 and lines[0].startswith("error: ")
    return lines[0]


def npz(tmp_path, **changes):
    with np.load(SAMPLE) as f:
        arrays = {k: f[k][:50] for k in f.files}
    arrays.update(changes)
    arrays = {k: v for k, v in arrays.items() if v is not None}
    path = tmp_path / "mnist.npz"
    np.savez(path, **arrays)
    return path


def idx_folder(tmp_path, magic=2051, extra_bytes=0, labels=None):
    folder = tmp_path / "idx"
    folder.mkdir()
    with np.load(SAMPLE) as f:
        x, y = f["x_test"][:20], f["y_test"][:20] if labels is None else labels
    for stem, array, m in (
        ("train-images-idx3-ubyte", x, magic),
        ("train-labels-idx1-ubyte", y, 2049),
        ("t10k-images-idx3-ubyte", x, magic),
        ("t10k-labels-idx1-ubyte", y, 2049),
    ):
        header = m.to_bytes(4, "big") + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
        (folder / (stem + ".gz")).write_bytes(
            gzip.compress(header + array.tobytes() + b"\0" * extra_bytes)
        )
    return folder


DATA_CASES = {
    "missing path": (lambda p: p / "nowhere.npz", ["nowhere.npz", "no such file"]),
    "empty file": (lambda p: _empty(p), ["e.npz", "empty"]),
    "truncated npz": (lambda p: _truncated(p), ["cut.npz", "truncated"]),
    "missing array": (lambda p: npz(p, y_train=None), ["mnist.npz", "missing", "y_train"]),
    "wrong shape": (
        lambda p: npz(p, x_test=np.zeros((50, 784), np.uint8)),
        ["x_test", "(N, height, width)"],
    ),
    "wrong dtype": (
        lambda p: npz(p, x_train=np.zeros((50, 28, 28), np.complex64)),
        ["uint8", "complex64"],
    ),
    "floats outside [0, 1]": (
        lambda p: npz(p, x_train=np.full((50, 28, 28), 255.0)),
        ["float64", "outside [0, 1]"],
    ),
    "negative labels": (lambda p: npz(p, y_test=np.full(50, -1, np.int8)), ["label -1"]),
    "IDX bad magic": (lambda p: idx_folder(p, magic=7), ["bad IDX magic number 7"]),
    "IDX counts disagree": (
        lambda p: idx_folder(p, extra_bytes=784),
        ["header announces", "file holds"],
    ),
    "IDX labels outside 0-9": (
        lambda p: idx_folder(p, labels=np.full(20, 200, np.uint8)),
        ["label 200"],
    ),
    "folder with no MNIST files": (lambda p: p, ["no train-images-idx3-ubyte", "no images"]),
}


def _empty(tmp_path):
    path = tmp_path / "e.npz"
    path.write_bytes(b"")
    return path


def _truncated(tmp_path):
    whole = npz(tmp_path)
    cut = tmp_path / "cut.npz"
    cut.write_bytes(whole.read_bytes()[:5000])
    return cut


@pytest.mark.parametrize("case", sorted(DATA_CASES))
def test_bad_data(case, tmp_path, capsys):
    make, words = DATA_CASES[case]
    path = make(tmp_path)
    line = run_and_capture(CH01, [f"--data={path}"], capsys, tmp_path)
    for word in words:
        assert word in line


@pytest.mark.parametrize(
    "chapter, args, words",
    [
        (CH01, ["--epochs_=2"], ["--epochs_", "unknown setting"]),
        (CH01, ["--learning_rate=fast"], ["--learning_rate=fast", "float"]),
        (CH01, ["--epochs=2.5"], ["--epochs=2.5", "int"]),
        (CH01, ["--code_dim=0"], ["CODE_DIM=0", "a whole number, 1 or more"]),
        (CH01, ["--batch_size=-8"], ["BATCH_SIZE=-8", "a whole number, 1 or more"]),
        (CH01, ["--epochs=0"], ["EPOCHS=0", "a whole number, 1 or more"]),
        (CH01, ["--learning_rate=0"], ["LEARNING_RATE=0.0", "above 0"]),
        (CH02, [f"--data={SAMPLE}", "--noise_std=-0.5"], ["NOISE_STD=-0.5", "0 or more"]),
        (
            CH02,
            [f"--data={SAMPLE}", "--sweep_levels=(0.1,-1)"],
            ["SWEEP_LEVELS=(0.1, -1.0)", "each must be"],
        ),
        (CH03, [f"--data={SAMPLE}", "--masking=1.5"], ["MASKING=1.5", "a fraction in [0, 1)"]),
        (
            CH03,
            [f"--data={SAMPLE}", "--sweep_levels=(0.5,2)"],
            ["SWEEP_LEVELS=(0.5, 2.0)", "between 0 and 1"],
        ),
        (
            CH04,
            [f"--data={SAMPLE}", "--noise_fraction=-0.1"],
            ["NOISE_FRACTION=-0.1", "between 0 and 1"],
        ),
        (CH04, [f"--data={SAMPLE}", "--salt_ratio=2"], ["SALT_RATIO=2", "between 0 and 1"]),
        (
            CH03,
            [f"--data={SAMPLE}", "--validation_size=9000"],
            ["VALIDATION_SIZE=9000", "less than the 5,000 training images"],
        ),
        (CH02, [f"--data={SAMPLE}", "--image_size=30"], ["IMAGE_SIZE=30", "multiple of 4"]),
        (
            CH04,
            [f"--data={SAMPLE}", "--range_model_levels=(0.9,0.1)"],
            ["RANGE_MODEL_LEVELS=(0.9, 0.1)", "lowest first"],
        ),
        (
            CH04,
            [f"--data={SAMPLE}", "--range_model_levels=(0,1.5)"],
            ["RANGE_MODEL_LEVELS=(0.0, 1.5)", "between 0 and 1"],
        ),
        (
            CH04,
            [f"--data={SAMPLE}", "--range_model_levels=(0.5,)"],
            ["RANGE_MODEL_LEVELS=(0.5,)", "two fractions"],
        ),
    ],
)
def test_bad_settings(chapter, args, words, tmp_path, capsys):
    line = run_and_capture(chapter, args, capsys, tmp_path)
    for word in words:
        assert word in line
