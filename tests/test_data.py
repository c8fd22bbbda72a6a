import gzip

from common import data as data_module
from common.data import holdout_split, load_mnist, read_idx_folder, read_npz, read_path
from common.errors import DataError, SettingError

import numpy as np
import pytest

from conftest import SAMPLE, SHARED_MNIST


def write_idx(folder, arrays, gz=False, names=data_module.IDX_FILES, magic=None, count=None):
    """Write arrays as the four IDX files of the original distribution."""
    folder.mkdir(exist_ok=True)
    for key, stem in names.items():
        a = arrays[key]
        is_image = key.startswith("x")
        header = (magic or (2051 if is_image else 2049)).to_bytes(4, "big")
        dims = list(a.shape)
        if count is not None:
            dims[0] = count
        header += b"".join(int(d).to_bytes(4, "big") for d in dims)
        payload = header + a.astype(np.uint8).tobytes()
        path = folder / (stem + (".gz" if gz else ""))
        path.write_bytes(gzip.compress(payload) if gz else payload)
    return folder


def small(sample_arrays, n=50):
    return {k: v[:n] for k, v in sample_arrays.items()}


def test_npz_gives_float_images_in_unit_range_and_labels(tmp_path, sample_arrays):
    path = tmp_path / "m.npz"
    np.savez(path, **small(sample_arrays))
    d = load_mnist(path)
    assert d.x_train.shape == (50, 28, 28) and d.x_train.dtype == np.float32
    assert d.x_test.shape == (50, 28, 28) and d.y_test.dtype == np.uint8
    assert 0 <= d.x_train.min() and d.x_train.max() == 1.0
    np.testing.assert_array_equal(d.x_train, sample_arrays["x_train"][:50] / np.float32(255))
    np.testing.assert_array_equal(d.y_train, sample_arrays["y_train"][:50])
    assert str(path) in d.source and "50 training and 50 test images" in d.describe()


@pytest.mark.parametrize("gz", [False, True])
def test_idx_folder_matches_the_npz(tmp_path, sample_arrays, gz):
    arrays = small(sample_arrays)
    folder = write_idx(tmp_path / "idx", arrays, gz=gz)
    read = read_idx_folder(folder)
    for key in arrays:
        np.testing.assert_array_equal(read[key], arrays[key])
    assert load_mnist(folder).x_test.shape == (50, 28, 28)


def test_mnist_path_environment_variable_is_used(tmp_path, sample_arrays, monkeypatch):
    path = tmp_path / "env.npz"
    np.savez(path, **small(sample_arrays, 20))
    monkeypatch.setenv("MNIST_PATH", str(path))
    assert len(load_mnist().x_train) == 20


def test_offline_without_a_path_falls_back_to_the_sample_with_one_warning(
    tmp_path, monkeypatch, capsys
):
    monkeypatch.delenv("MNIST_PATH", raising=False)
    monkeypatch.setattr(data_module, "KERAS_CACHE", tmp_path / "no-cache" / "mnist.npz")
    monkeypatch.setattr(data_module, "DOWNLOAD_HOST", ("127.0.0.1", 9))  # nothing listens there
    d = load_mnist()
    assert "bundled sample" in d.source
    assert len(d.x_train) == 5000 and len(d.x_test) == 1000
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("warning:") and "MNIST_PATH" in err[0]
    # and the run's closing line says where its figures come from
    from common.script import finish

    finish(tmp_path, "a figure", 0.0)
    assert "bundled sample of 5,000 training images, not the full MNIST" in capsys.readouterr().out
    load_mnist(SAMPLE)  # an explicit path is what the reader chose: no such note
    finish(tmp_path, "a figure", 0.0)
    assert "bundled sample" not in capsys.readouterr().out


def test_bundled_sample_is_balanced_real_mnist(sample_arrays):
    assert SAMPLE.stat().st_size < 2_000_000
    assert np.bincount(sample_arrays["y_train"]).tolist() == [500] * 10
    assert np.bincount(sample_arrays["y_test"]).tolist() == [100] * 10
    if SHARED_MNIST.exists():  # every sample image is one of MNIST's own
        with np.load(SHARED_MNIST) as f:
            x_test = f["x_test"]
        assert (x_test == sample_arrays["x_test"][0]).all(axis=(1, 2)).any()


def test_train_limit_keeps_the_first_images_and_warns_when_too_large(
    tmp_path, sample_arrays, capsys
):
    path = tmp_path / "m.npz"
    np.savez(path, **small(sample_arrays))
    assert len(load_mnist(path, train_limit=7).x_train) == 7
    assert len(load_mnist(path, train_limit=10_000).x_train) == 50
    assert "TRAIN_LIMIT=10000 is larger than the 50 training images" in capsys.readouterr().err


def expect_error(path, *words):
    with pytest.raises(DataError) as caught:
        read_path(path)
    message = str(caught.value)
    assert "\n" not in message and str(path) in message
    for word in words:
        assert word in message


def test_missing_path(tmp_path):
    expect_error(tmp_path / "nope.npz", "no such file")


def test_empty_file(tmp_path):
    path = tmp_path / "empty.npz"
    path.write_bytes(b"")
    expect_error(path, "empty")


def test_truncated_npz(tmp_path, sample_arrays):
    path = tmp_path / "cut.npz"
    np.savez(path, **small(sample_arrays))
    path.write_bytes(path.read_bytes()[:3000])
    expect_error(path, "truncated")


def test_npz_missing_an_array(tmp_path, sample_arrays):
    arrays = small(sample_arrays)
    del arrays["y_test"]
    path = tmp_path / "m.npz"
    np.savez(path, **arrays)
    expect_error(path, "missing", "y_test")


def test_npz_with_wrong_shape(tmp_path, sample_arrays):
    arrays = small(sample_arrays)
    arrays["x_train"] = arrays["x_train"].reshape(50, 784)
    path = tmp_path / "m.npz"
    np.savez(path, **arrays)
    expect_error(path, "x_train", "(N, height, width)", "(50, 784)")


def test_npz_with_wrong_dtype(tmp_path, sample_arrays):
    arrays = small(sample_arrays)
    # 0-255 as floats: probably forgot to scale
    arrays["x_test"] = arrays["x_test"].astype(np.float32)
    path = tmp_path / "m.npz"
    np.savez(path, **arrays)
    expect_error(path, "x_test", "float32", "outside [0, 1]")
    arrays["x_test"] = arrays["x_test"].astype(np.complex64)
    np.savez(path, **arrays)
    expect_error(path, "x_test", "uint8 pixels 0-255 or floats in [0, 1]", "complex64")


def test_npz_with_labels_outside_0_to_9(tmp_path, sample_arrays):
    arrays = small(sample_arrays)
    arrays["y_train"] = arrays["y_train"].copy()
    arrays["y_train"][3] = 12
    path = tmp_path / "m.npz"
    np.savez(path, **arrays)
    with pytest.raises(DataError, match="label 12, outside 0-9"):
        read_npz(path)  # as MNIST (MNIST_PATH, the Keras cache): ten digits
    assert len(read_path(path)[1]) == 13  # as your own data (--data=): classes 0 to 12
    arrays["y_train"] = arrays["y_train"].astype(np.int8)
    arrays["y_train"][3] = -1
    np.savez(path, **arrays)
    expect_error(path, "label -1")


def test_npz_with_label_count_disagreeing(tmp_path, sample_arrays):
    arrays = small(sample_arrays)
    arrays["y_test"] = arrays["y_test"][:40]
    path = tmp_path / "m.npz"
    np.savez(path, **arrays)
    expect_error(path, "y_test", "50 images")


def test_idx_bad_magic(tmp_path, sample_arrays):
    folder = write_idx(tmp_path / "idx", small(sample_arrays), magic=1234)
    with pytest.raises(DataError, match=r"bad IDX magic number 1234 \(expected 20(51|49)\)"):
        read_idx_folder(folder)


def test_idx_header_counts_disagree_with_payload(tmp_path, sample_arrays):
    folder = write_idx(tmp_path / "idx", small(sample_arrays), count=60)
    with pytest.raises(DataError, match="header announces 60 x 28 x 28"):
        read_idx_folder(folder)


def test_idx_labels_outside_0_to_9(tmp_path, sample_arrays):
    arrays = small(sample_arrays)
    arrays["y_test"] = np.full(50, 10, np.uint8)
    folder = write_idx(tmp_path / "idx", arrays, gz=True)
    expect_error(folder, "label 10")


def test_folder_with_no_recognised_files(tmp_path):
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "cat.txt").write_text("meow")
    expect_error(tmp_path / "photos", "no train-images-idx3-ubyte")


@pytest.mark.skipif(
    not SHARED_MNIST.exists(),
    reason="the full MNIST is only beside the project in development and CI",
)
def test_full_mnist_when_available():
    d = read_npz(SHARED_MNIST)
    assert d["x_train"].shape == (60000, 28, 28) and d["x_test"].shape == (10000, 28, 28)
    assert d["y_train"][:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
    assert np.bincount(d["y_train"]).tolist() == [
        5923,
        6742,
        5958,
        6131,
        5842,
        5421,
        5918,
        6265,
        5851,
        5949,
    ]


def test_a_mnist_path_that_does_not_exist_is_named_as_missing(tmp_path, monkeypatch):
    monkeypatch.setenv("MNIST_PATH", str(tmp_path / "gone.npz"))
    with pytest.raises(DataError, match="gone.npz: no such file or folder"):
        load_mnist()


@pytest.mark.parametrize("n, expected", [(60000, 5000), (5000, 417), (240, 20), (11, 1), (2, 1)])
def test_the_held_out_part_follows_the_number_of_images(n, expected):
    x = np.arange(n)
    fit, held = holdout_split(x, None, "VALIDATION_SIZE")
    assert len(held) == expected and np.array_equal(np.concatenate([fit, held]), x)  # the last ones


def test_a_held_out_size_that_cannot_work_says_what_to_set():
    with pytest.raises(
        SettingError,
        match=r"VALIDATION_SIZE=300: must be at least 1 and less than the 240 training images; "
        r"set it to at most 239",
    ):
        holdout_split(np.arange(240), 300, "VALIDATION_SIZE")
    assert len(holdout_split(np.arange(240), 100, "VALIDATION_SIZE")[1]) == 100
