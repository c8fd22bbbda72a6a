"""
How close does training come to what this machine can do?

Measures, in one run on the machine at hand:
- the dense matrix-multiply peak: float32 GEMM GFLOP/s through NumPy and through TensorFlow;
- for the model of each chapter at its default batch size: training images per second, training
  GFLOP/s (multiply-adds of its layers counted, forward plus backward = 3x forward) and that as a
  fraction of the GEMM peak, and inference images per second;
- the cost of corruption: a denoising training step against the same step with clean inputs;
- time to quality: seconds of training until 01's autoencoder beats PCA's test MSE.

Prints a table and writes benchmarks/results.json.
Run: python benchmarks/benchmark.py            (MNIST_PATH for the full data; about 4 minutes)
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from common.corruption import Corruption, denoising_batches  # noqa: E402
from common.data import load_mnist  # noqa: E402
from common.metrics import mse_per_image  # noqa: E402
from common.script import chapter_definitions  # noqa: E402

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from keras import layers  # noqa: E402

GEMM_SIZE = 4096  # square float32 matrices for the peak
REPEATS = 5  # best of this many
TIMED_STEPS = 150  # training steps timed per model, after a warm-up


def load_script(name: str):
    """A chapter's constants and functions, without running it."""
    return chapter_definitions(ROOT / f"{name}.py")


def gemm_peak() -> tuple[float, float]:
    """Best GFLOP/s of an n x n x n float32 product, NumPy and TensorFlow."""
    n = GEMM_SIZE
    rng = np.random.default_rng(0)
    a, b = rng.random((n, n), np.float32), rng.random((n, n), np.float32)
    flops = 2 * n**3
    a @ b
    numpy_best = min(_timed(lambda: a @ b) for _ in range(REPEATS))
    ta, tb = tf.constant(a), tf.constant(b)
    product = tf.function(lambda: tf.linalg.matmul(ta, tb))
    product().numpy()
    tf_best = min(_timed(lambda: product().numpy()) for _ in range(REPEATS))
    return flops / numpy_best / 1e9, flops / tf_best / 1e9


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def forward_macs(model: keras.Model) -> int:
    """Multiply-adds of one image through the Dense and convolution layers."""
    total = 0
    for layer in model.layers:
        if isinstance(layer, layers.Dense):
            total += int(np.prod(layer.kernel.shape))
        elif isinstance(layer, layers.Conv2DTranspose):
            h, w = layer.input.shape[1:3]
            total += h * w * int(np.prod(layer.kernel.shape))
        elif isinstance(layer, layers.Conv2D):
            h, w = layer.output.shape[1:3]
            total += h * w * int(np.prod(layer.kernel.shape))
    return total


class StepTimer(keras.callbacks.Callback):
    """Wall time of the training batches after the first `warmup` ones."""

    def __init__(self, warmup: int):
        super().__init__()
        self.warmup, self.count, self.start, self.seconds = warmup, 0, None, None

    def on_train_batch_end(self, batch, logs=None):
        self.count += 1
        if self.count == self.warmup:
            self.start = time.perf_counter()

    def on_train_end(self, logs=None):
        self.seconds = time.perf_counter() - self.start


def train_speed(model: keras.Model, x: np.ndarray, corruption: Corruption | None, batch_size: int) -> float:
    """Training images per second at steady state (after compilation and warm-up)."""
    stream, _ = denoising_batches(x, corruption, batch_size, seed=0)
    warmup = 20
    timer = StepTimer(warmup)
    model.fit(stream, steps_per_epoch=warmup + TIMED_STEPS, epochs=1, callbacks=[timer], verbose=0, shuffle=False)
    return TIMED_STEPS * batch_size / timer.seconds


def infer_speed(model: keras.Model, x: np.ndarray) -> float:
    model.predict(x[:2000], batch_size=1000, verbose=0)
    best = min(_timed(lambda: model.predict(x, batch_size=1000, verbose=0)) for _ in range(3))
    return len(x) / best


def chapter_models() -> list[tuple[str, keras.Model, int, Corruption | None]]:
    """(script, compiled model, default batch size, corruption) for each chapter's model."""
    ch01 = load_script("01_basic_autoencoder")
    ae, _ = ch01.build_autoencoder(ch01.CODE_DIM, tuple(ch01.HIDDEN_UNITS))
    ae.compile(optimizer=keras.optimizers.Adam(ch01.LEARNING_RATE), loss="binary_crossentropy", jit_compile=True)
    rows = [("01_basic_autoencoder.py", ae, ch01.BATCH_SIZE, None)]
    for script, corruption in (
        ("02_gaussian_denoising", Corruption("gaussian", 0.5)),
        ("03_masking_denoising", Corruption("masking", 0.5)),
        ("04_salt_pepper_denoising", Corruption("salt_and_pepper", 0.5)),
    ):
        chapter = load_script(script)
        model = chapter.build_denoiser(chapter.CHANNELS, chapter.CODE_DIM, chapter.IMAGE_SIZE, script)
        model.compile(
            optimizer=keras.optimizers.Adam(chapter.LEARNING_RATE), loss="binary_crossentropy", jit_compile=True
        )
        rows.append((f"{script}.py", model, chapter.BATCH_SIZE, corruption))
    # 05's widest layer, a 784-1000-784 denoising autoencoder (its first pretraining stage), and
    # 06's deep 784-1000-500-250-30 autoencoder, unrolled
    stacks = {"05 first layer 784-1000-784": (1000,), "06 deep AE 1000-500-250-30": (1000, 500, 250, 30)}
    for name, widths in stacks.items():
        image = keras.Input((28, 28))
        h = layers.Flatten()(image)
        for w in widths:
            h = layers.Dense(w, activation="relu")(h)
        for w in reversed(widths[:-1]):
            h = layers.Dense(w, activation="relu")(h)
        out = layers.Reshape((28, 28))(layers.Dense(784, activation="sigmoid")(h))
        model = keras.Model(image, out)
        model.compile(optimizer="adam", loss="binary_crossentropy", jit_compile=True)
        rows.append((name, model, 256, Corruption("masking", 0.25)))
    return rows


def seconds_to_beat_pca(data) -> tuple[float, float]:
    """Training seconds until 01's autoencoder (default settings) beats PCA's test MSE."""
    ch01 = load_script("01_basic_autoencoder")
    keras.utils.set_random_seed(0)
    mean, components = ch01.pca(data.x_train, ch01.CODE_DIM)
    target = float(mse_per_image(data.x_test, ch01.pca_reconstruct(data.x_test, mean, components)).mean())
    model, _ = ch01.build_autoencoder(ch01.CODE_DIM, tuple(ch01.HIDDEN_UNITS))
    steps = -(-len(data.x_train) // ch01.BATCH_SIZE)
    schedule = keras.optimizers.schedules.CosineDecay(ch01.LEARNING_RATE, decay_steps=ch01.EPOCHS * steps)
    model.compile(optimizer=keras.optimizers.Adam(schedule), loss="binary_crossentropy", jit_compile=True)
    stream, steps = denoising_batches(data.x_train, None, ch01.BATCH_SIZE, seed=0)

    class Watch(keras.callbacks.Callback):
        """Every 25 steps, pause the clock and measure the test MSE."""

        def __init__(self):
            super().__init__()
            self.trained, self.mark, self.reached = 0.0, time.perf_counter(), None

        def on_train_batch_end(self, batch, logs=None):
            if (batch + 1) % 25:
                return
            self.trained += time.perf_counter() - self.mark
            mse = float(mse_per_image(data.x_test, model.predict(data.x_test, batch_size=2000, verbose=0)).mean())
            if mse < target:
                self.reached = self.trained
                self.model.stop_training = True
            self.mark = time.perf_counter()

    watch = Watch()
    model.fit(stream, steps_per_epoch=steps, epochs=ch01.EPOCHS, callbacks=[watch], verbose=0, shuffle=False)
    return watch.reached if watch.reached is not None else float("nan"), target


def cpu_name() -> str:
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def main() -> dict:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    data = load_mnist()
    machine = f"{cpu_name()}, {os.cpu_count()} cores, TensorFlow {tf.__version__}"
    print(f"machine: {machine}\ndata: {data.describe()}")
    peak_numpy, peak_tf = gemm_peak()
    peak = max(peak_numpy, peak_tf)
    print(f"float32 GEMM {GEMM_SIZE}^3, best of {REPEATS}: NumPy {peak_numpy:.1f}, TensorFlow {peak_tf:.1f} GFLOP/s")

    chapters, plain_speed = [], {}
    header = f"{'model':<32}{'batch':>6}{'train img/s':>12}{'GFLOP/s':>9}{'of peak':>9}{'infer img/s':>13}"
    print("\n" + header)
    for name, model, batch_size, corruption in chapter_models():
        macs = forward_macs(model)
        speed = train_speed(model, data.x_train, corruption, batch_size)
        gflops = speed * macs * 2 * 3 / 1e9
        row = {
            "script": name,
            "batch_size": batch_size,
            "forward_macs_per_image": macs,
            "train_images_per_s": speed,
            "train_gflops": gflops,
            "fraction_of_peak": gflops / peak,
            "infer_images_per_s": infer_speed(model, data.x_test),
        }
        chapters.append(row)
        print(
            f"{name:<32}{batch_size:>6}{speed:>12,.0f}{gflops:>9.1f}{row['fraction_of_peak']:>9.0%}"
            f"{row['infer_images_per_s']:>13,.0f}"
        )
        if name.startswith("02"):
            plain_speed["model"] = (model, batch_size)

    print("\ncost of drawing a fresh corruption every batch (02's model):")
    model, batch_size = plain_speed["model"]
    clean = train_speed(model, data.x_train, None, batch_size)
    overhead = {}
    for kind, level in (("gaussian", 0.5), ("masking", 0.5), ("salt_and_pepper", 0.5)):
        noisy = train_speed(model, data.x_train, Corruption(kind, level), batch_size)
        overhead[kind] = clean / noisy - 1  # extra time per step, as a fraction of a clean step
        print(f"  {kind:<16} {overhead[kind]:+.1%} of a clean training step")

    seconds, target = seconds_to_beat_pca(data)
    print(f"\n01's autoencoder beats PCA's test MSE ({target:.5f}) after {seconds:.1f} s of training")

    results = {
        "machine": machine,
        "data": data.source,
        "gemm_size": GEMM_SIZE,
        "gemm_peak_gflops_numpy": peak_numpy,
        "gemm_peak_gflops_tf": peak_tf,
        "chapters": chapters,
        "corruption_overhead": overhead,
        "seconds_to_beat_pca": seconds,
        "pca_test_mse": target,
    }
    (ROOT / "benchmarks" / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    print("\nwrote benchmarks/results.json")
    return results


if __name__ == "__main__":
    main()
