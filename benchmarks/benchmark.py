"""
How fast does each chapter's model train, under each Keras backend installed here?

For the model of each chapter, at its default batch size and compiled as the chapter compiles it
(`common.devices.jit_compile`): training images per second at steady state (after compilation and a
warm-up), training GFLOP/s (the multiply-adds of its dense and convolution layers, forward plus
backward = 3x forward) and that as a fraction of the machine's float32 matrix-multiply peak
(NumPy, 4096 x 4096 x 4096), and inference images per second. Each backend runs in a process of its
own (KERAS_BACKEND), one after the other. Prints a table and writes benchmarks/results.json.

Run: python benchmarks/benchmark.py                  (every installed backend; a few minutes each)
     python benchmarks/benchmark.py --backends=jax   (one)
"""

from __future__ import annotations

import importlib.util
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BACKENDS = ("tensorflow", "jax", "torch")
GEMM_SIZE = 4096  # square float32 matrices for the peak
WARMUP_STEPS = 20  # training steps before the clock starts (compilation, caches)
TIMED_STEPS = 100  # training steps timed per model


def gemm_peak() -> float:
    """Best GFLOP/s of an n x n x n float32 product through NumPy."""
    import numpy as np  # noqa: PLC0415

    rng = np.random.default_rng(0)
    a = rng.random((GEMM_SIZE, GEMM_SIZE), np.float32)
    b = rng.random((GEMM_SIZE, GEMM_SIZE), np.float32)
    a @ b
    best = min(timed(lambda: a @ b) for _ in range(5))
    return 2 * GEMM_SIZE**3 / best / 1e9


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def measure_this_backend() -> dict:
    """Every chapter's model under the backend of this process (KERAS_BACKEND)."""
    sys.path.insert(0, str(ROOT))
    from common.devices import describe, jit_compile  # noqa: PLC0415
    from common.script import chapter_definitions  # noqa: PLC0415

    import keras  # noqa: PLC0415
    import numpy as np  # noqa: PLC0415
    from keras import layers  # noqa: PLC0415

    def chapter(name):
        return chapter_definitions(ROOT / f"{name}.py")

    def forward_macs(model: keras.Model) -> int:
        """Multiply-adds of one example through the dense and convolution layers, nested models
        too."""
        total = 0
        for layer in model.layers:
            if isinstance(layer, keras.Model):
                total += forward_macs(layer)
            elif isinstance(layer, layers.Dense):
                total += int(np.prod(layer.kernel.shape))
            elif isinstance(layer, layers.Conv2DTranspose):
                total += int(np.prod(layer.input.shape[1:3])) * int(np.prod(layer.kernel.shape))
            elif isinstance(layer, layers.Conv2D):
                total += int(np.prod(layer.output.shape[1:3])) * int(np.prod(layer.kernel.shape))
        return total

    class StepTimer(keras.callbacks.Callback):
        """Wall time of the training batches after the first WARMUP_STEPS."""

        def __init__(self):
            super().__init__()
            self.count = 0
            self.start = None
            self.seconds = None

        def on_train_batch_end(self, batch, logs=None):
            self.count += 1
            if self.count == WARMUP_STEPS:
                self.start = time.perf_counter()

        def on_train_end(self, logs=None):
            self.seconds = time.perf_counter() - self.start

    rng = np.random.default_rng(0)
    images = (rng.random((20_000, 28, 28)) < 0.2).astype(np.float32)

    def measure(
        label,
        model,
        x,
        y,
        batch_size,
        predict_model=None,
        on_tensorflow=True,
        loss="binary_crossentropy",
    ):
        """Train and predict `model` as its chapter compiles it (XLA under TensorFlow where it
        does)."""
        model.compile(optimizer="adam", loss=loss, jit_compile=jit_compile(on_tensorflow))
        steps = WARMUP_STEPS + TIMED_STEPS
        n = steps * batch_size
        repeat = np.arange(n) % len(x)
        timer = StepTimer()
        targets = {name: y[name][repeat] for name in y} if isinstance(y, dict) else y[repeat]
        model.fit(
            x[repeat],
            targets,
            batch_size=batch_size,
            epochs=1,
            shuffle=False,
            callbacks=[timer],
            verbose=0,
        )
        train = TIMED_STEPS * batch_size / timer.seconds
        predictor = predict_model or model
        predictor.predict(x[:2000], batch_size=1000, verbose=0)
        infer = len(x) / min(
            timed(lambda: predictor.predict(x, batch_size=1000, verbose=0)) for _ in range(2)
        )
        macs = forward_macs(predictor)
        print(f"  {label:<46}{train:>10,.0f}{infer:>12,.0f} images/s", flush=True)
        return {
            "model": label,
            "batch": batch_size,
            "train_images_per_s": train,
            "infer_images_per_s": infer,
            "forward_macs": macs,
            "train_gflops": 3 * 2 * macs * train / 1e9,
        }

    rows = []
    ch01 = chapter("01_basic_autoencoder")
    autoencoder, _ = ch01.build_autoencoder(ch01.CODE_DIM, tuple(ch01.HIDDEN_UNITS))
    rows.append(
        measure("01 dense autoencoder 784-512-256-32", autoencoder, images, images, ch01.BATCH_SIZE)
    )
    ch02 = chapter("02_gaussian_denoising")
    from common.corruption import Corruption  # noqa: PLC0415

    # the models that train behind a corruption, with it and without it: the difference is the
    # cost of drawing the noise afresh for every batch
    for kind, level in (("gaussian", 0.5), ("masking", 0.5), ("salt_and_pepper", 0.5), (None, 0)):
        denoiser = ch02.build_denoiser(tuple(ch02.FILTERS), ch02.CODE_DIM, 28, "denoiser")
        first = [keras.Input((28, 28))] + ([Corruption(kind, level).layer(0)] if kind else [])
        noisy = keras.Sequential([*first, denoiser])
        label = f"02-04 convolutional denoiser, {kind or 'no'} noise"
        rows.append(measure(label, noisy, images, images, ch02.BATCH_SIZE, denoiser))
    ch05 = chapter("05_stacked_autoencoder")
    pixels = images.reshape(len(images), -1)
    for kind in ("masking", None):
        first = keras.Sequential(
            [keras.Input((784,))] + ([Corruption(kind, 0.5).layer(0)] if kind else [])
        )
        first.add(layers.Dense(ch05.HIDDEN_UNITS[0], activation="relu"))
        first.add(layers.Dense(784, activation="sigmoid"))
        label = f"05 first layer 784-1000-784, {kind or 'no'} noise"
        rows.append(measure(label, first, pixels, pixels, ch05.PRETRAIN_BATCH_SIZE))
    ch06 = chapter("06_deep_autoencoder")
    stack = []
    inputs = 784
    for k, units in enumerate((*ch06.HIDDEN_UNITS, ch06.CODE_DIM)):
        weights = [
            rng.normal(0, 0.05, (inputs, units)).astype(np.float32),
            np.zeros(units, np.float32),
        ]
        undo = [
            rng.normal(0, 0.05, (units, inputs)).astype(np.float32),
            np.zeros(inputs, np.float32),
        ]
        activation = "linear" if k == len(ch06.HIDDEN_UNITS) else "relu"
        stack.append(
            ch06.PretrainedLayer(
                weights, undo, activation, "sigmoid" if k == 0 else "relu", {}, 0.0
            )
        )
        inputs = units
    deep = ch06.build_deep_autoencoder(stack)
    rows.append(
        measure("06 deep autoencoder 784-1000-500-250-30", deep, images, images, ch06.BATCH_SIZE)
    )
    ch07 = chapter("07_anomaly_detection")
    detector = ch07.build_autoencoder(ch07.CODE_DIM, tuple(ch07.FILTERS), 28)
    rows.append(
        measure(
            "07 convolutional detector",
            detector,
            images,
            images,
            ch07.BATCH_SIZE,
            on_tensorflow=False,
        )
    )
    ch09 = chapter("09_segmentation")
    scenes = np.zeros((2000, 48, 48, 1), np.float32)
    scenes[:, 10:38, 10:38, 0] = images[:2000]
    masks = (scenes[..., 0] > 0.5).astype(np.uint8)
    body = ch09.build_body((48, 48, 1), tuple(ch09.FILTERS), True, "unet")
    unet = ch09.with_head(body, 11, "linear", "unet_segmenter")  # class scores, as 09 trains it
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    rows.append(
        measure(
            "09 U-Net, 48x48 scenes",
            unet,
            scenes,
            masks,
            ch09.BATCH_SIZE,
            on_tensorflow=False,
            loss=loss,
        )
    )
    ch08 = chapter("08_variational_autoencoder")
    zeros = {
        "reconstruction": np.zeros(len(images), np.float32),
        "kl": np.zeros(len(images), np.float32),
    }
    terms = {"reconstruction": ch08.term_is_the_loss, "kl": ch08.term_is_the_loss}
    # a fresh binarization every batch, or the grey images as they are
    for binarized in (True, False):
        encoder = ch08.build_encoder(ch08.CODE_DIM, tuple(ch08.HIDDEN_UNITS), 28, True)
        decoder = ch08.build_decoder(ch08.CODE_DIM, tuple(ch08.HIDDEN_UNITS), 28)
        vae = ch08.with_loss_terms(encoder, decoder, binarized, 0)
        label = f"08 VAE 784-512-256-32, {'binarized' if binarized else 'grey'}"
        rows.append(measure(label, vae, images, zeros, ch08.BATCH_SIZE, encoder, loss=terms))
    ch10 = chapter("10_sparse_autoencoder")
    sparse, sparse_encoder = ch10.build_sparse_autoencoder(ch10.CODE_DIM, 28, ch10.K)
    label = "10 top-k autoencoder 784-1000-784, k = 25"
    rows.append(
        measure(label, sparse, images, images, ch10.BATCH_SIZE, sparse_encoder, False, "mse")
    )
    return {"keras": describe(), "rows": rows}


def main() -> None:
    wanted = BACKENDS
    for arg in sys.argv[1:]:
        if arg.startswith("--backends="):
            wanted = tuple(arg.split("=", 1)[1].split(","))
        else:
            sys.exit(f"{arg!r}: expected --backends=name[,name...] (tensorflow, jax, torch)")
    if os.environ.get("BENCHMARK_CHILD"):
        print("RESULT " + json.dumps(measure_this_backend()))
        return
    results = {"machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores"}
    results["numpy_gemm_gflops"] = gemm_peak()
    print(
        f"{results['machine']}; float32 GEMM through NumPy: {results['numpy_gemm_gflops']:.0f} "
        "GFLOP/s"
    )
    results["backends"] = {}
    for backend in wanted:
        if importlib.util.find_spec(backend) is None:
            print(f"{backend}: not installed, skipped")
            continue
        print(f"\n{backend}:{'':<41}{'training':>10}{'inference':>12}")
        env = {
            **os.environ,
            "KERAS_BACKEND": backend,
            "BENCHMARK_CHILD": "1",
            "TF_CPP_MIN_LOG_LEVEL": "3",
        }
        child = subprocess.run([sys.executable, __file__], env=env, capture_output=True, text=True)
        lines = child.stdout.splitlines()
        print("\n".join(line for line in lines if not line.startswith("RESULT ")))
        found = [line for line in lines if line.startswith("RESULT ")]
        if child.returncode or not found:
            print(
                f"{backend}: failed ({child.stderr.strip().splitlines()[-1:] or child.returncode})"
            )
            continue
        measured = json.loads(found[-1][len("RESULT ") :])
        for row in measured["rows"]:
            row["of_gemm_peak"] = row["train_gflops"] / results["numpy_gemm_gflops"]
        results["backends"][backend] = measured
    path = ROOT / "benchmarks" / "results.json"
    path.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
