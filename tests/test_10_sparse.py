"""Chapter 10, sparse autoencoders: the top-k code against NumPy (exactly k non-zeros per row, the
largest ones, gradients only through them), the L1 penalty against its definition, bad settings,
and the chapter end to end on the bundled sample with its saved models read back; then
further/10_sparse_frontier.py from those models."""

import json

from common import script
from common.errors import MissingChapterError
from common.gradients import input_gradient

import keras
import numpy as np
import pytest

from conftest import SAMPLE, load_script

CHAPTER = load_script("10_sparse_autoencoder")
FURTHER = load_script("further/10_sparse_frontier")
DATA = [f"--data={SAMPLE}", "--train_limit=600"]  # the chapter's and the further script's
TINY = [*DATA, "--epochs=2", "--code_dim=100", "--k=8", "--batch_size=64"]
FURTHER_TINY = [
    *DATA,
    "--frontier_ks=(4,)",
    "--frontier_l1_weights=(1e-2,)",
    "--classifier_epochs=2",
]


@pytest.fixture(scope="module")
def chapter_run(tmp_path_factory):
    """The chapter on its tiny settings, once for this file: its metrics and its output folder."""
    folder = tmp_path_factory.mktemp("chapter")
    return CHAPTER.main([*TINY, f"--output_dir={folder}"]), folder


def positive_codes(rows=6, units=40, seed=0):
    """A batch of codes as the ReLU gives them: some zeros, the rest positive and all different."""
    h = np.random.default_rng(seed).standard_normal((rows, units)).astype("float32")
    return np.maximum(h, 0)


@pytest.mark.parametrize("k", [1, 5, 12])
def test_keep_largest_keeps_exactly_the_k_largest_of_each_row(k):
    h = np.random.default_rng(k).standard_normal((8, 30)).astype("float32")
    kept = keras.ops.convert_to_numpy(CHAPTER.keep_largest(h, k))
    expected = np.zeros_like(h)
    largest = np.argsort(-h, axis=1)[:, :k]
    np.put_along_axis(expected, largest, np.take_along_axis(h, largest, axis=1), axis=1)
    np.testing.assert_array_equal(kept, expected)
    assert ((kept != 0).sum(axis=1) == k).all()


def test_the_top_k_layer_passes_gradients_through_the_kept_units_only():
    h = positive_codes() + 0.1  # all positive, so that every row has more than k candidates
    k = 5
    layer = CHAPTER.TopK(k)
    weights = np.random.default_rng(1).standard_normal(h.shape[1]).astype("float32")
    gradient = input_gradient(lambda x: keras.ops.sum(layer(x) * weights, axis=-1), h)
    kept = np.zeros_like(h, dtype=bool)
    np.put_along_axis(kept, np.argsort(-h, axis=1)[:, :k], True, axis=1)
    np.testing.assert_allclose(gradient[kept], np.broadcast_to(weights, h.shape)[kept], rtol=1e-6)
    assert (gradient[~kept] == 0).all()


def test_the_top_k_layer_counts_the_images_since_each_unit_fired():
    h = np.zeros((4, 6), "float32")
    h[:, 0] = 1.0  # unit 0 is the largest of every row
    h[:, 1] = 0.5
    layer = CHAPTER.TopK(2)
    layer(h, training=True)
    layer(h, training=True)
    since = keras.ops.convert_to_numpy(layer.images_since_fired)
    np.testing.assert_array_equal(since[:2], [0, 0])
    np.testing.assert_array_equal(since[2:], [8, 8, 8, 8])  # two batches of 4 images without firing
    layer(h)  # outside training, nothing is counted
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(layer.images_since_fired), since)


def test_the_l1_penalty_is_its_weight_times_the_sum_of_the_code():
    weight = 3e-3
    autoencoder, encoder = CHAPTER.build_sparse_autoencoder(50, 28, None, weight)
    images = np.random.default_rng(2).random((5, 28, 28)).astype("float32")
    code = encoder.predict(images, verbose=0)
    autoencoder(images, training=True)
    penalty = float(keras.ops.convert_to_numpy(keras.ops.sum(autoencoder.losses)))
    # Keras divides an activity penalty by the batch
    expected = weight * np.abs(code).sum() / len(images)
    np.testing.assert_allclose(penalty, expected, rtol=1e-5)


def test_the_top_k_autoencoder_starts_with_unit_features_and_the_encoder_as_their_transpose():
    autoencoder, encoder = CHAPTER.build_sparse_autoencoder(60, 28, 7)
    features, bias = autoencoder.get_layer("decoder").get_weights()
    np.testing.assert_allclose(np.linalg.norm(features, axis=1), 1, rtol=1e-5)
    np.testing.assert_allclose(autoencoder.get_layer("encoder_dense").get_weights()[0], features.T)
    codes = encoder.predict(
        np.random.default_rng(3).random((9, 28, 28)).astype("float32"), verbose=0
    )
    assert codes.shape == (9, 60)
    assert ((codes > 0).sum(axis=1) <= 7).all()


@pytest.mark.parametrize(
    "args, words",
    [
        (["--k=5000"], "K=5000"),
        (["--l1_weight=-0.1"], "L1_WEIGHT=-0.1"),
        (["--k=0"], "K=0"),
    ],
)
def test_bad_settings_get_one_line_naming_the_setting(args, words, tmp_path, capsys):
    with pytest.raises(SystemExit) as stop:
        script.run(lambda: CHAPTER.main([*TINY, *args, f"--output_dir={tmp_path}"]))
    assert stop.value.code == 2
    error = capsys.readouterr().err.strip()
    assert "Traceback" not in error
    assert len(error.splitlines()) == 1
    assert error.startswith("error: ")
    assert words in error


def test_10_end_to_end_on_the_sample(chapter_run):
    metrics, folder = chapter_run
    for picture in ("dictionary.png", "one_feature_at_a_time.png", "loss.png"):
        assert (folder / picture).read_bytes().startswith(b"\x89PNG")
    assert set(metrics["models"]) == {"unconstrained", "l1", "topk", "topk_without_auxiliary_loss"}
    assert json.loads((folder / "metrics.json").read_text())["settings"]["K"] == 8

    images = np.load(SAMPLE)["x_test"].astype("float32") / 255
    for name in ("unconstrained", "l1", "topk"):
        autoencoder = keras.models.load_model(folder / "models" / f"{name}.keras")
        encoder = keras.models.load_model(folder / "models" / f"{name}_encoder.keras")
        rebuilt = autoencoder.predict(images, verbose=0)
        mse = float(np.mean((rebuilt - images) ** 2))
        np.testing.assert_allclose(mse, metrics["models"][name]["test_mse"], rtol=1e-4)
        active = encoder.predict(images, verbose=0) > 0
        np.testing.assert_allclose(
            active.sum(axis=1).mean(), metrics["models"][name]["mean_active_units"], rtol=1e-5
        )
    assert metrics["models"]["topk"]["mean_active_units"] <= 8


def test_further_10_sparse_frontier_from_the_chapters_models(chapter_run, tmp_path):
    chapter_metrics, folder = chapter_run
    basic = tmp_path / "basic"
    load_script("01_basic_autoencoder").main(
        [*DATA, "--epochs=1", "--batch_size=100", f"--output_dir={basic}"]
    )
    metrics = FURTHER.main(
        [
            *FURTHER_TINY,
            f"--chapter_dir={folder}",
            f"--chapter_01_dir={basic}",
            f"--output_dir={tmp_path / 'out'}",
        ]
    )
    assert (tmp_path / "out" / "frontier.png").read_bytes().startswith(b"\x89PNG")
    saved = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert saved["l1_error_over_topk_frontier"] == pytest.approx(
        metrics["l1_error_over_topk_frontier"]
    )
    topk = {p["k"]: p for p in metrics["frontier"]["topk"]}
    l1 = {p["l1_weight"]: p for p in metrics["frontier"]["l1"]}
    assert set(topk) == {4, 8}
    assert set(l1) == {1e-2, 1e-3}
    # the chapter's models are loaded, not trained again: they give the chapter's figures
    for point, name in ((topk[8], "topk"), (l1[1e-3], "l1")):
        assert point["source"] == "chapter 10"
        assert point["test_mse"] == pytest.approx(chapter_metrics["models"][name]["test_mse"])
    # every point trained for as many epochs as the chapter's models
    assert {p["epochs"] for p in [*topk.values(), *l1.values()]} == {2}
    assert topk[4]["mean_active_units"] <= 4
    errors = metrics["classifier_test_error_pct"]
    assert set(errors) == {"topk", "l1", "unconstrained", "chapter_01_code", "pixels"}
    assert all(0 <= error <= 100 for error in errors.values())


def test_further_10_sparse_frontier_without_the_chapters_files_says_which_command(tmp_path):
    with pytest.raises(MissingChapterError, match="python 10_sparse_autoencoder.py"):
        FURTHER.main(
            [*FURTHER_TINY, f"--chapter_dir={tmp_path / 'none'}", f"--output_dir={tmp_path}"]
        )


@pytest.mark.parametrize(
    "args, words",
    [
        (["--train_limit=500"], "TRAIN_LIMIT=500: the chapter's models"),
        (["--frontier_ks=(4,2000)"], "FRONTIER_KS=(4, 2000): the code has 100 units"),
    ],
)
def test_further_10_sparse_frontier_bad_settings_get_one_line(
    chapter_run, args, words, tmp_path, capsys
):
    _, folder = chapter_run
    with pytest.raises(SystemExit) as stop:
        script.run(
            lambda: FURTHER.main(
                [*FURTHER_TINY, *args, f"--chapter_dir={folder}", f"--output_dir={tmp_path}"]
            )
        )
    assert stop.value.code == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1
    assert error.startswith("error: ")
    assert words in error
