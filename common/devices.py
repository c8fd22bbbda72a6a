"""Where and how the training runs: the backend Keras runs on, whether its training step is
compiled, and one device (the default) or several.

Keras runs the same models on TensorFlow, JAX or PyTorch, each on a GPU when one is visible to it
and on the CPU otherwise. What differs is how a training step is made fast:

- JAX compiles every step with XLA; uncompiled, it would run op by op, far slower;
- TensorFlow can compile with XLA or not: XLA speeds up most models of this collection on a CPU
  and slows down a few (`jit_compile(on_tensorflow=...)`); a compiled step that draws random
  numbers draws them with `random_normal` and `random_uniform` below, which stay fast under XLA;
- PyTorch runs op by op: compiling with `torch.compile` costs more than it saves on these small
  models.

`--strategy=mirrored` spreads a run over several devices: every batch is split between copies of
the model, one a device, and their gradients are summed before each step. Under TensorFlow that
is `tf.distribute.MirroredStrategy` over every local GPU, or two CPU devices where there is none
(it shows the mechanics, it is not faster); under JAX, `keras.distribution.DataParallel` over
every local device. Keras' `fit` and `predict` follow it: the scripts do not change.
"""

from __future__ import annotations

import importlib.util

from common import tensorflow_start_quietly
from common.errors import SettingError

import keras

STRATEGIES = (None, "mirrored")
CPU_DEVICES = 2  # logical CPU devices TensorFlow mirrors over when there is no GPU


def backend() -> str:
    """The backend Keras runs on: "tensorflow", "jax" or "torch"."""
    return keras.backend.backend()


def describe() -> str:
    """One line: Keras, its backend and their versions, and the devices it trains on."""
    name = backend()
    module = __import__(name)
    on = f"{_BACKEND_NAMES[name]} {module.__version__}"
    return f"Keras {keras.__version__} on {on}, {_device_kind(name)}"


_BACKEND_NAMES = {"tensorflow": "TensorFlow", "jax": "JAX", "torch": "PyTorch"}


def _device_kind(name: str) -> str:
    if name == "tensorflow":
        import tensorflow as tf  # noqa: PLC0415

        gpus = tf.config.list_physical_devices("GPU")
    elif name == "jax":
        import jax  # noqa: PLC0415

        gpus = [d for d in jax.devices() if d.platform != "cpu"]
    else:
        import torch  # noqa: PLC0415

        gpus = list(range(torch.cuda.device_count()))
    return f"{len(gpus)} GPU{'s' if len(gpus) > 1 else ''}" if gpus else "CPU"


def set_random_seed(seed: int) -> None:
    """Seed every random generator: Python's, NumPy's, Keras' and the backend's (and TensorFlow's,
    which Keras seeds wherever it is installed, under any backend)."""
    with tensorflow_start_quietly():
        keras.utils.set_random_seed(seed)


def tensorflow_installed() -> bool:
    return importlib.util.find_spec("tensorflow") is not None


def random_normal(shape, seed: keras.random.SeedGenerator, dtype: str = "float32"):
    """`keras.random.normal(shape, dtype=dtype, seed=seed)`, drawn under TensorFlow by the Philox
    algorithm: inside a step compiled with XLA, TensorFlow's automatic choice (ThreeFry) draws some
    twenty times slower on a CPU, enough to slow a whole training step. A fresh draw every call."""
    if backend() != "tensorflow":
        return keras.random.normal(shape, dtype=dtype, seed=seed)
    import tensorflow as tf  # noqa: PLC0415

    return tf.random.stateless_normal(shape, seed=_philox_seed(seed), dtype=dtype, alg="philox")


def random_uniform(
    shape, seed: keras.random.SeedGenerator, dtype: str = "float32", low=0.0, high=1.0
):
    """`keras.random.uniform(shape, low, high, dtype=dtype, seed=seed)`, drawn under TensorFlow by
    the Philox algorithm, fast under XLA (see `random_normal`)."""
    if backend() != "tensorflow":
        return keras.random.uniform(shape, low, high, dtype=dtype, seed=seed)
    import tensorflow as tf  # noqa: PLC0415

    low = tf.cast(low, dtype)
    high = tf.cast(high, dtype)
    return tf.random.stateless_uniform(
        shape, seed=_philox_seed(seed), minval=low, maxval=high, dtype=dtype, alg="philox"
    )


def _philox_seed(seed: keras.random.SeedGenerator):
    """The generator's next seed, as the two 32-bit integers XLA's stateless draws take."""
    import tensorflow as tf  # noqa: PLC0415

    return tf.cast(tf.math.floormod(seed.next(), tf.int32.max - 1), tf.int32)


def jit_compile(on_tensorflow: bool = True) -> bool:
    """Whether `model.compile` should compile the training step into one optimized program, noise
    and all (XLA): always under JAX, never under PyTorch, under TensorFlow as `on_tensorflow` says
    (a chapter says False where XLA was measured slower on a CPU, e.g. for some convolutions)
    unless a strategy is in force (XLA cannot compile a step whose variables live on several
    devices)."""
    name = backend()
    if name == "jax":
        return True
    if name == "torch":
        return False
    import tensorflow as tf  # noqa: PLC0415

    return on_tensorflow and not tf.distribute.has_strategy()


def use_strategy(name: str | None) -> str:
    """Put everything built from now on under the named strategy (None: one device, the
    default). Returns a one-line description of the devices used."""
    if name not in STRATEGIES:
        raise SettingError(f"STRATEGY={name!r}: expected None (one device) or 'mirrored'")
    if backend() == "tensorflow":
        return _tensorflow_strategy(name)
    if backend() == "jax":
        return _jax_distribution(name)
    if name is not None:
        raise SettingError(
            f"STRATEGY={name!r}: runs under TensorFlow or JAX (KERAS_BACKEND), not under PyTorch"
        )
    return "one device"


def _tensorflow_strategy(name: str | None) -> str:
    import tensorflow as tf  # noqa: PLC0415

    tf.distribute.experimental_set_strategy(None)
    if name is None:
        return "one device"
    if tf.config.list_physical_devices("GPU"):
        devices = None  # MirroredStrategy's default: every local GPU
    else:
        cpu = tf.config.list_physical_devices("CPU")[0]
        try:  # possible only before TensorFlow has started its runtime
            tf.config.set_logical_device_configuration(
                cpu, [tf.config.LogicalDeviceConfiguration()] * CPU_DEVICES
            )
        except RuntimeError:
            pass  # already started in this process: mirror over the CPU devices it has
        devices = [d.name for d in tf.config.list_logical_devices("CPU")]
    strategy = tf.distribute.MirroredStrategy(devices)
    tf.distribute.experimental_set_strategy(strategy)
    names = ", ".join(strategy.extended.worker_devices)
    return f"MirroredStrategy over {strategy.num_replicas_in_sync} devices ({names})"


def _jax_distribution(name: str | None) -> str:
    keras.distribution.set_distribution(None)
    if name is None:
        return "one device"
    devices = keras.distribution.list_devices()
    keras.distribution.set_distribution(keras.distribution.DataParallel(devices=devices))
    plural = "s" if len(devices) > 1 else ""
    return f"DataParallel over {len(devices)} device{plural} ({', '.join(devices)})"
