import itertools

from common.batches import Batches, ShuffledPasses, shuffled_batches

import keras
import numpy as np


def examples(n):
    x = np.arange(n, dtype=np.float32)[:, None] * np.ones((1, 3), np.float32)
    y = np.arange(n)
    return x, y


def test_a_pass_holds_every_example_once_and_its_last_batch_is_smaller():
    x, y = examples(10)
    passes = ShuffledPasses(x, y, batch_size=4, seed=0)
    batches = [passes[step] for step in range(len(passes))]
    assert len(passes) == 3
    assert [len(batch_y) for _, batch_y in batches] == [4, 4, 2]
    seen = np.concatenate([batch_y for _, batch_y in batches])
    np.testing.assert_array_equal(np.sort(seen), y)
    for batch_x, batch_y in batches:  # inputs and targets stay paired
        np.testing.assert_array_equal(batch_x[:, 0], batch_y)


def test_steps_make_an_epoch_of_several_passes_each_in_a_new_order():
    x, y = examples(6)
    passes = ShuffledPasses(x, y, batch_size=6, seed=1, steps=5)
    orders = [passes[step][1] for step in range(len(passes))]
    assert len(passes) == 5
    for order in orders:
        np.testing.assert_array_equal(np.sort(order), y)
    shuffled = ShuffledPasses(x[::-1], y[::-1], batch_size=2, seed=1, steps=3)
    firsts = [shuffled[step][1] for step in range(3)]
    np.testing.assert_array_equal(np.sort(np.concatenate(firsts)), y)


def test_the_same_seed_gives_the_same_batches_and_a_new_epoch_new_ones():
    x, y = examples(50)
    one = ShuffledPasses(x, y, batch_size=8, seed=3, steps=20)
    two = ShuffledPasses(x, y, batch_size=8, seed=3, steps=20)
    first_epoch = [one[step][1] for step in range(20)]
    for step in reversed(range(20)):  # any order of asking gives the same batches
        np.testing.assert_array_equal(two[step][1], first_epoch[step])
    one.on_epoch_end()
    second_epoch = [one[step][1] for step in range(20)]
    assert any(not np.array_equal(a, b) for a, b in zip(first_epoch, second_epoch, strict=True))


def test_a_dict_of_targets_is_batched_alongside():
    x, y = examples(7)
    passes = ShuffledPasses(x, {"a": y, "b": 2 * y}, batch_size=3, seed=0)
    batch_x, batch_targets = passes[0]
    np.testing.assert_array_equal(batch_targets["b"], 2 * batch_targets["a"])
    np.testing.assert_array_equal(batch_x[:, 0], batch_targets["a"])


def test_the_backends_batches_cover_every_example_each_pass():
    x, y = examples(12)
    batches = shuffled_batches(x, y, 4, seed=0, steps=6)
    if isinstance(batches, keras.utils.PyDataset):
        stream = (batches[step] for step in range(6))
    else:  # a tf.data stream under TensorFlow: endless, every batch full
        stream = batches.as_numpy_iterator()
    drawn = [np.asarray(batch_y) for _, batch_y in itertools.islice(stream, 6)]
    assert all(len(batch_y) == 4 for batch_y in drawn)
    for a_pass in (drawn[:3], drawn[3:]):
        np.testing.assert_array_equal(np.sort(np.concatenate(a_pass)), y)


def test_drawn_batches_repeat_with_the_seed():
    def draw(rng, n):
        return rng.integers(0, 1000, n), None

    one = Batches(draw, steps=4, batch_size=5, seed=7)
    two = Batches(draw, steps=4, batch_size=5, seed=7)
    np.testing.assert_array_equal(one[2][0], two[2][0])
    one.on_epoch_end()
    assert not np.array_equal(one[2][0], two[2][0])
