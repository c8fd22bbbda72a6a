from common.corruption import (
    Corruption,
    LevelRange,
    denoising_batches,
    gaussian_noise,
    masking_noise,
    salt_and_pepper_noise,
)
from common.errors import SettingError

import numpy as np
import pytest
import tensorflow as tf
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from skimage.util import random_noise

GREY = np.full((200, 200), 0.5, np.float32)  # a flat image: every change is visible


def test_gaussian_matches_scikit_image_random_noise():
    ours = gaussian_noise(GREY, 0.5, seed=1)
    theirs = random_noise(GREY, mode="gaussian", var=0.5**2, clip=True, rng=1)
    # the same process, different random streams: compare the distributions of the output
    for stat in (np.mean, np.std, lambda a: np.mean(a == 0), lambda a: np.mean(a == 1)):
        assert stat(ours) == pytest.approx(stat(theirs), abs=0.01)
    assert np.mean(ours == 0) == pytest.approx(0.1587, abs=0.01)  # P(N(0, 0.5) < -0.5)


def test_masking_matches_scikit_image_pepper():
    ours = masking_noise(GREY, 0.3, seed=2)
    theirs = random_noise(GREY, mode="pepper", amount=0.3, rng=2)
    assert np.mean(ours == 0) == pytest.approx(np.mean(theirs == 0), abs=0.01)
    assert np.mean(ours == 0.5) == pytest.approx(np.mean(theirs == 0.5), abs=0.01)


@pytest.mark.parametrize("ratio", [0.5, 0.2])
def test_salt_and_pepper_matches_scikit_image(ratio):
    ours = salt_and_pepper_noise(GREY, 0.4, seed=3, salt_ratio=ratio)
    theirs = random_noise(GREY, mode="s&p", amount=0.4, salt_vs_pepper=ratio, rng=3)
    for value in (0.0, 0.5, 1.0):
        assert np.mean(ours == value) == pytest.approx(np.mean(theirs == value), abs=0.01)
    assert np.mean(ours == 1) == pytest.approx(0.4 * ratio, abs=0.01)


@pytest.mark.parametrize(
    "corruption", [Corruption("gaussian", 0.3), Corruption("masking", 0.5), Corruption("salt_and_pepper", 0.5)]
)
def test_same_seed_same_corruption_other_seed_other_corruption(corruption, sample_arrays):
    x = sample_arrays["x_test"][:16].astype(np.float32) / 255
    a, b, c = corruption(x, 7), corruption(x, 7), corruption(x, 8)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert isinstance(a, np.ndarray) and a.dtype == np.float32 and a.shape == x.shape
    assert tf.is_tensor(corruption(tf.constant(x), 7))  # tensors in, tensors out


def test_masking_only_ever_zeroes_pixels(sample_arrays):
    x = sample_arrays["x_test"][:16].astype(np.float32) / 255
    y = masking_noise(x, 0.5, seed=0)
    assert np.all((y == x) | (y == 0))


def test_invalid_levels_name_the_setting():
    with pytest.raises(SettingError, match="NOISE_STD=-0.1"):
        Corruption("gaussian", -0.1)
    with pytest.raises(SettingError, match="NOISE_FRACTION=1.5"):
        Corruption("masking", 1.5)
    with pytest.raises(SettingError, match="SALT_RATIO=2"):
        Corruption("salt_and_pepper", 0.5, salt_ratio=2)
    with pytest.raises(SettingError, match="unknown corruption 'blur'"):
        Corruption("blur", 0.5)
    with pytest.raises(ValueError, match="float images"):
        masking_noise(np.zeros((2, 2), np.uint8), 0.5, seed=0)


def test_training_batches_get_a_fresh_corruption_every_batch_and_epoch():
    x = np.full((8, 28, 28), 0.5, np.float32)  # identical images: any difference is the noise
    stream, steps = denoising_batches(x, Corruption("masking", 0.5), batch_size=4, seed=0)
    assert steps == 2
    batches = [(noisy.numpy(), clean.numpy()) for noisy, clean in stream.take(2 * steps)]  # two epochs
    noisy = np.concatenate([n for n, _ in batches])
    assert all(np.array_equal(c, x[:4]) for _, c in batches)  # the target is the clean image
    masks = (noisy == 0).reshape(len(noisy), -1)
    for i in range(len(masks)):
        for j in range(i):
            assert not np.array_equal(masks[i], masks[j])
    again = [n.numpy() for n, _ in denoising_batches(x, Corruption("masking", 0.5), 4, seed=0)[0].take(4)]
    np.testing.assert_array_equal(np.concatenate(again), noisy)  # and the stream repeats with the seed


def test_plain_batches_are_clean_to_clean(sample_arrays):
    x = sample_arrays["x_test"][:10].astype(np.float32) / 255
    stream, steps = denoising_batches(x, None, batch_size=5, seed=0)
    for inputs, targets in stream.take(steps):
        np.testing.assert_array_equal(inputs.numpy(), targets.numpy())


# --- properties, for any batch and any valid level ---
images = arrays(
    np.float32, st.tuples(st.integers(1, 4), st.integers(1, 12), st.integers(1, 12)), elements=st.floats(0, 1, width=32)
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
@given(x=images, kind=st.sampled_from(["gaussian", "masking", "salt_and_pepper"]), seed=st.integers(0, 2**31))
def test_level_zero_is_the_identity(x, kind, seed):
    np.testing.assert_array_equal(Corruption(kind, 0.0)(x, seed), x)


@settings(max_examples=30, deadline=None)
@given(level=fractions, kind=st.sampled_from(["masking", "salt_and_pepper"]), seed=st.integers(0, 2**31))
def test_fraction_hit_matches_the_level(level, kind, seed):
    x = np.full((100, 100), 0.5, np.float32)  # 0.5 is neither 0 nor 1: every hit pixel changes
    changed = np.mean(Corruption(kind, level)(x, seed) != x)
    tolerance = 5 * np.sqrt(level * (1 - level) / x.size) + 1e-9  # five standard errors
    assert abs(changed - level) <= tolerance


@settings(max_examples=30, deadline=None)
@given(
    level=st.one_of(st.floats(max_value=-1e-9), st.floats(min_value=1.0000001), st.just(float("nan"))),
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
    x = np.full((4000, 28, 28), 0.5, np.float32)  # every hit pixel changes value
    y = LevelRange(kind, 0.1, 0.7)(x, 5)
    hit = (y != 0.5).mean(axis=(1, 2))  # each image's fraction of pixels hit: its level, within sampling noise
    assert 0.1 - 0.05 < hit.min() and hit.max() < 0.7 + 0.05
    assert np.histogram(hit, bins=6, range=(0.1, 0.7))[0].min() > 4000 / 6 * 0.8  # about uniform
    assert np.array_equal(y, LevelRange(kind, 0.1, 0.7)(x, 5))  # the same seed, the same draw
    assert not np.array_equal(y, LevelRange(kind, 0.1, 0.7)(x, 6))


def test_a_level_range_of_one_level_is_that_corruption():
    x = np.random.default_rng(0).random((50, 28, 28)).astype(np.float32)
    for kind, level in (("masking", 0.3), ("salt_and_pepper", 0.4), ("gaussian", 0.2)):
        np.testing.assert_allclose(LevelRange(kind, level, level)(x, 9), Corruption(kind, level)(x, 9), atol=1e-6)


def test_a_gaussian_level_range_scales_the_noise_per_image():
    x = np.full((300, 28, 28), 0.5, np.float32)
    std = (LevelRange("gaussian", 0.0, 0.1)(x, 1) - x).std(axis=(1, 2))  # little clipping at 0.1
    assert std.min() < 0.02 and 0.08 < std.max() < 0.11


@pytest.mark.parametrize(
    "low, high, words", [(0.5, 0.2, "lowest level must come first"), (0.0, 1.5, "TRAIN_RANGE=1.5")]
)
def test_a_bad_level_range_names_the_setting(low, high, words):
    with pytest.raises(SettingError, match=words):
        LevelRange("salt_and_pepper", low, high)
