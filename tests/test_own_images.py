"""Your own images (a folder of PNG/JPEG, an .npz with or without labels) and Fashion-MNIST, read
through the same loader as MNIST, and the chapters run on them."""

from common import data as data_module
from common.data import load_data, read_image_folder
from common.errors import DataError, SettingError

import numpy as np
import pytest
from skimage import io

from conftest import SAMPLE, load_script


@pytest.fixture(scope="module")
def digits():
    with np.load(SAMPLE) as f:
        return f["x_train"][:120], f["y_train"][:120]


def write_folder(root, images, labels=None, suffix=".png"):
    """Images as files: root/<label>/<i>.png, or root/<i>.png without labels."""
    for i, image in enumerate(images):
        folder = root / str(labels[i]) if labels is not None else root
        folder.mkdir(parents=True, exist_ok=True)
        io.imsave(folder / f"{i:04d}{suffix}", image, check_contrast=False)
    return root


def test_a_folder_of_28x28_grey_pngs_reads_back_exactly(tmp_path, digits):
    x, y = digits
    arrays, names = read_image_folder(write_folder(tmp_path / "mine", x, y))
    assert names == [str(d) for d in range(10)]  # one sub-folder per class, sorted
    assert len(arrays["x_train"]) + len(arrays["x_test"]) == len(x)
    assert len(arrays["x_test"]) == round(data_module.TEST_FRACTION * len(x))
    # every image comes back pixel for pixel, with the label of its folder
    seen = {img.tobytes(): label for img, label in zip(x, y)}
    for split in ("train", "test"):
        for image, label in zip(arrays[f"x_{split}"], arrays[f"y_{split}"]):
            assert seen[image.tobytes()] == label
    # the same split every time
    again, _ = read_image_folder(tmp_path / "mine")
    assert np.array_equal(again["x_test"], arrays["x_test"])
    # not folder by folder: the first or last few (TRAIN_LIMIT, held-out images) mix the classes
    assert len(set(arrays["y_train"][:20])) >= 6 and len(set(arrays["y_train"][-20:])) >= 6


def test_colour_images_of_any_size_become_grey_28x28_squares(tmp_path, digits):
    # the reference: TensorFlow's grey conversion and resizing
    tf = pytest.importorskip("tensorflow")
    x, _ = digits
    big = tf.image.resize(
        tf.convert_to_tensor(x[:10, ..., None], tf.float32), (84, 84), method="nearest"
    ).numpy()
    # reddish digits, 84x84
    rgb = np.concatenate([big, big * 0.5, big * 0.25], axis=-1).astype(np.uint8)
    write_folder(tmp_path / "colour", rgb, suffix=".jpg")
    d = load_data(tmp_path / "colour")
    assert d.x_train.shape[1:] == (28, 28) and d.x_train.dtype == np.float32 and len(d.x_train) == 8
    assert not d.labelled and d.y_train is None and d.class_names is None
    # against the reference: TensorFlow's own grey conversion and area resize of the same pixels
    grey = (
        tf.image.resize(
            tf.image.rgb_to_grayscale(rgb.astype(np.float32)), (28, 28), method="area"
        ).numpy()
        / 255
    )
    test_image = d.x_test[0]
    best = min(np.abs(grey[i, ..., 0] - test_image).mean() for i in range(10))
    assert best < 0.03  # JPEG is lossy; a wrong conversion is off by far more


def test_shrinking_averages_the_area_each_pixel_covers_and_enlarging_interpolates():
    from common.data import resize

    rng = np.random.default_rng(0)
    # 84 -> 28: blocks of 3 x 3 pixels, averaged
    square = rng.random((2, 84, 84)).astype(np.float32)
    np.testing.assert_allclose(
        resize(square, 28), square.reshape(2, 28, 3, 28, 3).mean(axis=(2, 4)), atol=1e-6
    )
    small = rng.random((2, 14, 14)).astype(np.float32)
    # 14 -> 28, bilinear: the edge pixels copied, the others between two neighbours
    big = resize(small, 28)
    np.testing.assert_allclose(big[:, 0, 0], small[:, 0, 0], atol=1e-6)
    np.testing.assert_allclose(
        big[:, 1, 0], 0.75 * small[:, 0, 0] + 0.25 * small[:, 1, 0], atol=1e-6
    )
    # and against TensorFlow's resizing, sizes that do not divide
    tf = pytest.importorskip("tensorflow")
    for images, method in (
        (rng.random((2, 37, 53)).astype(np.float32), "area"),
        (small, "bilinear"),
    ):
        reference = tf.image.resize(images[..., None], (28, 28), method=method).numpy()[..., 0]
        np.testing.assert_allclose(resize(images, 28), reference, atol=1e-5)


def test_train_and_test_subfolders_are_kept_as_the_split(tmp_path, digits):
    x, y = digits
    write_folder(tmp_path / "split" / "train", x[:100], y[:100])
    write_folder(tmp_path / "split" / "test", x[100:], y[100:])
    d = load_data(tmp_path / "split", image_size=16)
    assert d.x_train.shape == (100, 16, 16) and d.x_test.shape == (20, 16, 16)
    assert d.labelled and d.class_names == [str(c) for c in range(10)]
    # the test folder's images, and only those
    assert sorted(d.y_test.tolist()) == sorted(y[100:].tolist())


def test_an_npz_without_labels_and_with_float_colour_images(tmp_path):
    tf = pytest.importorskip("tensorflow")
    rng = np.random.default_rng(0)
    x_train, x_test = (
        rng.random((30, 32, 40, 3), np.float32),
        rng.random((6, 32, 40, 3), np.float32),
    )
    np.savez(tmp_path / "own.npz", x_train=x_train, x_test=x_test)
    d = load_data(tmp_path / "own.npz")
    assert not d.labelled and d.x_train.shape == (30, 28, 28) and d.x_test.shape == (6, 28, 28)
    reference = tf.image.resize(tf.image.rgb_to_grayscale(x_test), (28, 28), method="area").numpy()[
        ..., 0
    ]
    np.testing.assert_allclose(d.x_test, reference, atol=1e-5)
    assert "no labels" in d.describe()


def test_labels_for_one_split_only_is_an_error(tmp_path, digits):
    x, y = digits
    np.savez(tmp_path / "half.npz", x_train=x, y_train=y, x_test=x)
    with pytest.raises(DataError, match="has y_train but is missing y_test"):
        load_data(tmp_path / "half.npz")


def test_an_unreadable_image_is_named_in_one_line(tmp_path, digits):
    write_folder(tmp_path / "broken", digits[0][:5])
    (tmp_path / "broken" / "0002.png").write_bytes(b"not a png at all")
    with pytest.raises(DataError) as caught:
        load_data(tmp_path / "broken")
    assert str(tmp_path / "broken") in str(caught.value) and "\n" not in str(caught.value)


def test_an_unknown_dataset_is_a_setting_error():
    with pytest.raises(
        SettingError, match="DATASET='cifar10': expected one of mnist, fashion_mnist"
    ):
        load_data(dataset="cifar10")


def test_fashion_mnist_from_its_environment_variable_or_a_clear_error(
    tmp_path, monkeypatch, digits
):
    x, y = digits
    monkeypatch.setattr(data_module, "FASHION_DEBIAN", tmp_path / "none")
    monkeypatch.setattr(data_module, "FASHION_KERAS_CACHE", tmp_path / "none")
    monkeypatch.setattr(data_module, "_online", lambda timeout: False)
    monkeypatch.delenv("FASHION_MNIST_PATH", raising=False)
    monkeypatch.setenv("MNIST_PATH", str(SAMPLE))  # never used for Fashion-MNIST
    with pytest.raises(DataError, match="Fashion-MNIST not found: set FASHION_MNIST_PATH"):
        load_data(dataset="fashion_mnist")
    np.savez(tmp_path / "fashion.npz", x_train=x, y_train=y, x_test=x[:10], y_test=y[:10])
    monkeypatch.setenv("FASHION_MNIST_PATH", str(tmp_path / "fashion.npz"))
    d = load_data(dataset="fashion_mnist", train_limit=50)
    assert (
        d.x_train.shape == (50, 28, 28)
        and d.class_names[0] == "T-shirt/top"
        and "Fashion-MNIST" in d.source
    )


@pytest.mark.skipif(
    not data_module.FASHION_DEBIAN.is_dir(),
    reason="Debian's dataset-fashion-mnist is not installed",
)
def test_fashion_mnist_from_the_debian_package(monkeypatch):
    monkeypatch.delenv("FASHION_MNIST_PATH", raising=False)
    d = load_data(dataset="fashion_mnist")
    assert d.x_train.shape == (60000, 28, 28) and d.x_test.shape == (10000, 28, 28)
    assert np.bincount(d.y_train).tolist() == [6000] * 10 and d.class_names[9] == "Ankle boot"


def test_chapter_01_on_a_folder_of_images(tmp_path, digits):
    x, y = digits
    folder = write_folder(tmp_path / "mine", x, y)
    metrics = load_script("01_basic_autoencoder").main(
        [f"--data={folder}", "--epochs=1", "--batch_size=32", f"--output_dir={tmp_path / 'out'}"]
    )
    assert (
        metrics["n_train"] == 96
        and metrics["n_test"] == 24
        and (tmp_path / "out" / "codes.png").exists()
    )


def test_chapter_05_without_labels_says_in_one_line_that_it_needs_classes(tmp_path, digits):
    x, _ = digits
    np.savez(tmp_path / "unlabelled.npz", x_train=x[:100], x_test=x[100:])
    out = tmp_path / "out"
    with pytest.raises(
        DataError,
        match="unlabelled.npz: has no labels; .* needs one sub-folder of images per class",
    ):
        load_script("05_stacked_autoencoder").main(
            [f"--data={tmp_path / 'unlabelled.npz'}", f"--output_dir={out}"]
        )
    assert not (out / "metrics.json").exists()


@pytest.mark.slow
def test_chapter_10_on_a_folder_of_images(tmp_path, digits):
    x, y = digits
    folder = write_folder(tmp_path / "mine", x, y)
    metrics = load_script("10_sparse_autoencoder").main(
        [
            f"--data={folder}",
            "--epochs=2",
            "--batch_size=32",
            "--code_dim=100",
            "--k=8",
            f"--output_dir={tmp_path / 'out'}",
        ]
    )
    assert metrics["n_train"] == 96 and metrics["n_test"] == 24
    assert (tmp_path / "out" / "dictionary.png").exists()
    assert metrics["models"]["topk"]["mean_active_units"] <= 8


def test_chapter_10_trains_without_labels_and_its_classifiers_say_they_need_classes(
    tmp_path, digits
):
    x, _ = digits
    data = f"--data={tmp_path / 'unlabelled.npz'}"
    np.savez(tmp_path / "unlabelled.npz", x_train=x[:100], x_test=x[100:])
    args = [data, "--epochs=1", "--code_dim=50", "--k=5"]
    load_script("10_sparse_autoencoder").main([*args, f"--output_dir={tmp_path / 'chapter'}"])
    with pytest.raises(
        DataError, match="unlabelled.npz: has no labels; the linear classifiers need one sub-folder"
    ):
        load_script("further/10_sparse_frontier").main(
            [data, f"--chapter_dir={tmp_path / 'chapter'}", f"--output_dir={tmp_path / 'out'}"]
        )
