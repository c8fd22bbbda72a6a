"""The three corruption processes, on a fixed set (NumPy) and as a layer active only in training
(keras.random), against scikit-image's `random_noise` and their definitions (with Hypothesis)."""

from common.corruption import (
    Corrupt,
    Corruption,
    LevelRange,
    gaussian_noise,
    masking_noise,
    salt_and_pepper_noise,
)
from common.errors import SettingError

import keras
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from skimage.util import random_noise

GREY = np.full((200, 200), 0.5, np.float32)  # a flat image: every change is visible


def in_training(layer, x):
    """What a corruption layer does to `x` while a model trains."""
    return keras.ops.convert_to_numpy(layer(x, training=True))


def test_gaussian_matches_scikit_image_random_noise():
    theirs = random_noise(GREY, mode="gaussian", var=0.5**2, clip=True, rng=1)
    ours = gaussian_noise(GREY, 0.5, seed=1)
    layer = in_training(Corruption("gaussian", 0.5).layer(seed=1), GREY[None])[0]
    # the same process, different random streams: compare the distributions of the output
    for output in (ours, layer):
        for stat in (np.mean, np.std, lambda a: np.mean(a == 0), lambda a: np.mean(a == 1)):
            assert stat(output) == pytest.approx(stat(theirs), abs=0.01)
        assert np.mean(output == 0) == pytest.approx(0.1587, abs=0.01)  # P(N(0, 0.5) < -0.5)


def test_masking_matches_scikit_image_pepper():
    theirs = random_noise(GREY, mode="pepper", amount=0.3, rng=2)
    for output in (
        masking_noise(GREY, 0.3, seed=2),
        in_training(Corruption("masking", 0.3).layer(2), GREY[None])[0],
    ):
        assert np.mean(output == 0) == pytest.approx(np.mean(theirs == 0), abs=0.01)
        assert np.mean(output == 0.5) == pytest.approx(np.mean(theirs == 0.5), abs=0.01)


@pytest.mark.parametrize("ratio", [0.5, 0.2])
def test_salt_and_pepper_matches_scikit_image(ratio):
    theirs = random_noise(GREY, mode="s&p", amount=0.4, salt_vs_pepper=ratio, rng=3)
    layer = Corruption("salt_and_pepper", 0.4, salt_ratio=ratio).layer(3)
    for output in (
        salt_and_pepper_noise(GREY, 0.4, seed=3, salt_ratio=ratio),
        in_training(layer, GREY[None])[0],
    ):
        for value in (0.0, 0.5, 1.0):
            assert np.mean(output == value) == pytest.approx(np.mean(theirs == value), abs=0.01)
        assert np.mean(output == 1) == pytest.approx(0.4 * ratio, abs=0.01)


@pytest.mark.parametrize(
    "corruption",
    [Corruption("gaussian", 0.3), Corruption("masking", 0.5), Corruption("salt_and_pepper", 0.5)],
)
def test_same_seed_same_corruption_other_seed_other_corruption(corruption, sample_arrays):
    x = sample_arrays["x_test"][:16].astype(np.float32) / 255
    a = corruption(x, 7)
    b = corruption(x, 7)
    c = corruption(x, 8)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert isinstance(a, np.ndarray) and a.dtype == np.float32 and a.shape == x.shape
    # a pair of ints is a seed too
    np.testing.assert_array_equal(corruption(x, (7, 1)), corruption(x, (7, 1)))


def test_the_fixed_sets_draw_from_numpy_alone():
    """The corrupted test sets are the same on every backend: NumPy's generator, seeded, draws
    them."""
    x = np.full((3, 5, 5), 0.5, np.float32)
    rng = np.random.default_rng(11)
    expected = np.where(rng.random(x.shape) < 0.4, 0, x)
    np.testing.assert_array_equal(masking_noise(x, 0.4, 11), expected)


def test_the_layer_corrupts_only_in_training_and_draws_afresh_every_call():
    x = np.full((4, 28, 28), 0.5, np.float32)
    layer = Corruption("masking", 0.5).layer(seed=0)
    # predict, evaluate: untouched
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(layer(x)), x)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(layer(x, training=False)), x)
    draws = [in_training(layer, x) for _ in range(3)]
    masks = [d == 0 for d in draws]
    # a fresh draw
    assert not np.array_equal(masks[0], masks[1]) and not np.array_equal(masks[1], masks[2])
    for d in draws:
        assert np.all((d == 0) | (d == x)) and abs(np.mean(d == 0) - 0.5) < 0.05
    again = Corruption("masking", 0.5).layer(seed=0)
    np.testing.assert_array_equal(in_training(again, x), draws[0])  # the seed fixes the stream


SEEN = []  # what the layer below is given, batch by batch


class Recorder(keras.layers.Layer):
    """Passes its input on, and keeps a copy of every batch it is given (in an eager model)."""

    def call(self, x):
        try:
            SEEN.append(keras.ops.convert_to_numpy(x))
        # noqa: BLE001  (a symbolic call, while Keras works out the model's shapes)
        except Exception:
            pass
        return x

    def compute_output_shape(self, input_shape):
        return input_shape


def test_a_model_trained_behind_the_layer_sees_a_fresh_corruption_every_batch_of_every_epoch():
    SEEN.clear()
    seen = SEEN
    x = np.full((8, 6, 6), 0.5, np.float32)
    layers = [
        keras.Input((6, 6)),
        Corruption("masking", 0.5).layer(1),
        Recorder(),
        keras.layers.Flatten(),
    ]
    model = keras.Sequential([*layers, keras.layers.Dense(36)])
    model.compile(optimizer="sgd", loss="mse", run_eagerly=True)
    model.fit(x, x.reshape(8, -1), batch_size=4, epochs=2, shuffle=False, verbose=0)
    assert len(seen) == 4  # two batches an epoch, two epochs
    holes = [batch == 0 for batch in seen]
    for i in range(4):
        assert abs(holes[i].mean() - 0.5) < 0.1
        for j in range(i):
            assert not np.array_equal(holes[i], holes[j])  # every batch of every epoch: a new mask


def test_masking_only_ever_zeroes_pixels(sample_arrays):
    x = sample_arrays["x_test"][:16].astype(np.float32) / 255
    y = masking_noise(x, 0.5, seed=0)
    assert np.all((y == x) | (y == 0))


def test_invalid_levels_are_refused_in_one_line():
    with pytest.raises(SettingError, match="-0.1: must be a finite number, 0 or more"):
        Corruption("gaussian", -0.1)
    with pytest.raises(SettingError, match="1.5: must lie between 0 and 1"):
        Corruption("masking", 1.5)
    with pytest.raises(SettingError, match="salt among the pixels hit 2"):
        Corruption("salt_and_pepper", 0.5, salt_ratio=2)
    with pytest.raises(SettingError, match="unknown corruption 'blur'"):
        Corruption("blur", 0.5)
    with pytest.raises(ValueError, match="float images"):
        masking_noise(np.zeros((2, 2), np.uint8), 0.5, seed=0)


def test_the_layer_saves_and_loads_with_its_settings(tmp_path):
    layer = LevelRange("salt_and_pepper", 0.1, 0.7, salt_ratio=0.3).layer(seed=4)
    model = keras.Sequential([keras.Input((5, 5)), layer])
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras", custom_objects={"Corrupt": Corrupt})
    again = loaded.layers[0]
    assert (again.kind, again.low, again.high, again.salt_ratio, again.seed) == (
        "salt_and_pepper",
        0.1,
        0.7,
        0.3,
        4,
    )


# --- properties, for any batch and any valid level ---
images = arrays(
    np.float32,
    st.tuples(st.integers(1, 4), st.integers(1, 12), st.integers(1, 12)),
    elements=st.floats(0, 1, width=32),
)
fractions = st.floats(0, 1)


@settings(max_examples=40, deadline=None)
@given(
    x=images,
    level=fractions,
    kind=st.sampled_from(["gaussian", "masking", "salt_and_pepper"]),
    seed=st.integers(0, 2**31),
)
def test_output_in_unit_range_with_input_shape_and_dtype(x, level, kind, seed):
    y = Corruption(kind, level)(x, seed)
    assert y.shape == x.shape and y.dtype == x.dtype
    assert np.all((y >= 0) & (y <= 1))


@settings(max_examples=30, deadline=None)
@given(
    x=images,
    kind=st.sampled_from(["gaussian", "masking", "salt_and_pepper"]),
    seed=st.integers(0, 2**31),
)
def test_level_zero_is_the_identity(x, kind, seed):
    np.testing.assert_array_equal(Corruption(kind, 0.0)(x, seed), x)


@settings(max_examples=30, deadline=None)
@given(
    level=fractions,
    kind=st.sampled_from(["masking", "salt_and_pepper"]),
    seed=st.integers(0, 2**31),
)
def test_fraction_hit_matches_the_level(level, kind, seed):
    x = np.full((100, 100), 0.5, np.float32)  # 0.5 is neither 0 nor 1: every hit pixel changes
    changed = np.mean(Corruption(kind, level)(x, seed) != x)
    tolerance = 5 * np.sqrt(level * (1 - level) / x.size) + 1e-9  # five standard errors
    assert abs(changed - level) <= tolerance


@settings(max_examples=30, deadline=None)
@given(
    level=st.one_of(
        st.floats(max_value=-1e-9), st.floats(min_value=1.0000001), st.just(float("nan"))
    ),
    kind=st.sampled_from(["masking", "salt_and_pepper"]),
)
def test_invalid_fractions_raise(level, kind):
    with pytest.raises(SettingError):
        Corruption(kind, level)


@settings(max_examples=20, deadline=None)
@given(level=st.one_of(st.floats(max_value=-1e-9), st.just(float("inf")), st.just(float("nan"))))
def test_invalid_std_raises(level):
    with pytest.raises(SettingError):
        Corruption("gaussian", level)


@pytest.mark.parametrize("kind", ["masking", "salt_and_pepper"])
def test_a_level_range_hits_each_image_at_its_own_level_drawn_uniformly(kind):
    x = np.full((4000, 28, 28), 0.5, np.float32)  # every hit pixel changes
    level_range = LevelRange(kind, 0.1, 0.7)
    for y in (level_range(x, 5), in_training(level_range.layer(5), x)):
        # each image's fraction of pixels hit: its level, within sampling noise
        hit = (y != 0.5).mean(axis=(1, 2))
        assert 0.1 - 0.05 < hit.min() and hit.max() < 0.7 + 0.05
        # about uniform
        assert np.histogram(hit, bins=6, range=(0.1, 0.7))[0].min() > 4000 / 6 * 0.8
    # the same seed, the same draw
    assert np.array_equal(level_range(x, 5), LevelRange(kind, 0.1, 0.7)(x, 5))
    assert not np.array_equal(level_range(x, 5), LevelRange(kind, 0.1, 0.7)(x, 6))


def test_a_level_range_of_one_level_is_that_corruption():
    x = np.random.default_rng(0).random((50, 28, 28)).astype(np.float32)
    for kind, level in (("masking", 0.3), ("salt_and_pepper", 0.4), ("gaussian", 0.2)):
        np.testing.assert_allclose(
            LevelRange(kind, level, level)(x, 9), Corruption(kind, level)(x, 9), atol=1e-6
        )


def test_a_gaussian_level_range_scales_the_noise_per_image():
    x = np.full((300, 28, 28), 0.5, np.float32)
    level_range = LevelRange("gaussian", 0.0, 0.1)
    for y in (level_range(x, 1), in_training(level_range.layer(1), x)):
        std = (y - x).std(axis=(1, 2))  # little clipping at 0.1
        assert std.min() < 0.02 and 0.08 < std.max() < 0.11


@pytest.mark.parametrize(
    "low, high, words", [(0.5, 0.2, "lowest level must come first"), (0.0, 1.5, "1.5")]
)
def test_a_bad_level_range_is_refused(low, high, words):
    with pytest.raises(SettingError, match=words):
        LevelRange("salt_and_pepper", low, high)
