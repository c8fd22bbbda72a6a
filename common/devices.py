"""Where the training runs: one device (the default), or several with `tf.distribute`.

`--strategy=mirrored` puts a whole run under `tf.distribute.MirroredStrategy`: every model built
and trained after `use_strategy` keeps one copy of its weights on each local GPU (or, on a
machine without GPUs, on each of CPU_DEVICES logical CPU devices), every batch is split between
the copies, and their gradients are summed before each step. The scripts do not change: Keras'
`fit` and `predict` follow the strategy that is in force.

XLA compilation (`jit_compile`) is turned off under a strategy: XLA cannot compile a step whose
variables live on several devices.
"""

from __future__ import annotations

from common.errors import SettingError

import tensorflow as tf

STRATEGIES = (None, "mirrored")
CPU_DEVICES = 2  # logical CPU devices to mirror over when there is no GPU


def use_strategy(name: str | None) -> str:
    """Put everything built from now on under the named strategy (None: one device, the
    default). Returns a one-line description of the devices used."""
    if name not in STRATEGIES:
        raise SettingError(f"STRATEGY={name!r}: expected None (one device) or 'mirrored'")
    tf.distribute.experimental_set_strategy(None)
    if name is None:
        return "one device"
    if tf.config.list_physical_devices("GPU"):
        devices = None  # MirroredStrategy's default: every local GPU
    else:
        cpu = tf.config.list_physical_devices("CPU")[0]
        try:  # possible only before TensorFlow has started its runtime
            tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * CPU_DEVICES)
        except RuntimeError:
            pass  # already started in this process: mirror over the CPU devices it has
        devices = [d.name for d in tf.config.list_logical_devices("CPU")]
    strategy = tf.distribute.MirroredStrategy(devices)
    tf.distribute.experimental_set_strategy(strategy)
    names = ", ".join(strategy.extended.worker_devices)
    return f"MirroredStrategy over {strategy.num_replicas_in_sync} devices ({names})"


def use_xla() -> bool:
    """Whether to compile training steps with XLA: yes on one device, no under a strategy."""
    return not tf.distribute.has_strategy()
