"""The gradient of a model's output with respect to its input: which change of the input pixels
raises an output most. Keras trains with gradients on every backend but has no backend-neutral
call that returns one, so this module asks the backend it runs on: TensorFlow's `GradientTape`,
JAX's `grad`, PyTorch's `backward`. Chapter 02 draws what raises its code units with it."""

from __future__ import annotations

from collections.abc import Callable

import keras
import numpy as np


def input_gradient(function: Callable, x: np.ndarray) -> np.ndarray:
    """d(sum of function(x))/dx, as a NumPy array shaped like `x`. For a function of one image at
    a time (a model's unit, say), row i is the gradient of that image's output with respect to
    its own pixels."""
    x = np.asarray(x, dtype=np.float32)
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf  # noqa: PLC0415

        x = tf.convert_to_tensor(x)
        with tf.GradientTape() as tape:
            tape.watch(x)
            total = tf.reduce_sum(function(x))
        return tape.gradient(total, x).numpy()
    if backend == "jax":
        import jax  # noqa: PLC0415

        return np.asarray(jax.grad(lambda images: function(images).sum())(x))
    import torch  # noqa: PLC0415

    x = torch.tensor(x, requires_grad=True)
    function(x).sum().backward()
    return x.grad.numpy()
