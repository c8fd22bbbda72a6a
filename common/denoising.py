"""The experiment that chapters 02, 03 and 04 share: one corruption process, one denoising
autoencoder, and everything it is measured against.

1. Hold out the last HOLDOUT training images: they choose the classical denoisers' parameters
   and give the validation loss; they are never trained on.
2. Train the denoising autoencoder (corrupted in, clean out, a fresh corruption every batch) and a
   plain autoencoder of the same shape (clean in, clean out).
3. Corrupt the whole test set once, with a fixed seed, and score the corrupted images, both
   autoencoders' outputs and the four classical denoisers: PSNR and SSIM against the clean images.
4. Sweep the corruption level with the model trained at the default level, against the best
   classical denoiser at each level.
5. Save the figures, `metrics.json` and `model.keras` (corrupted image in, denoised image out).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf
from keras import layers

from common import baselines, plotting
from common.corruption import TEST_SEED, Corruption
from common.data import Dataset
from common.devices import use_xla
from common.errors import SettingError
from common.metrics import image_quality, psnr_per_image
from common.outputs import save_json, save_model
from common.training import backup_folder, train_autoencoder


def build_denoiser(channels: int, code_units: int, name: str, size: int = 28) -> keras.Model:
    """A convolutional autoencoder with a dense code, for size x size images (size a multiple of
    4; here for the default 28):

        28x28 image -> conv 3x3 stride 2 (14x14 x channels) -> conv 3x3 stride 2 (7x7 x 2*channels)
        -> dense code (code_units) -> dense (7x7 x 2*channels)
        -> transposed conv stride 2 (14x14 x channels) -> transposed conv stride 2 -> 28x28 image

    The strided convolutions see each pixel with its neighbours, which is what tells a speck of
    noise from a stroke; the dense code in the middle sees the whole digit. The output is a
    sigmoid, so every pixel is in [0, 1].
    """
    if size % 4:
        raise SettingError(f"IMAGE_SIZE={size}: the denoiser halves the image twice, so it must be a multiple of 4")
    quarter = size // 4
    image = keras.Input(shape=(size, size), name="image")
    h = layers.Reshape((size, size, 1))(image)
    h = layers.Conv2D(channels, 3, strides=2, padding="same", activation="relu", name="conv_1")(h)
    h = layers.Conv2D(2 * channels, 3, strides=2, padding="same", activation="relu", name="conv_2")(h)
    h = layers.Flatten()(h)
    h = layers.Dense(code_units, activation="relu", name="code")(h)
    h = layers.Dense(quarter * quarter * 2 * channels, activation="relu")(h)
    h = layers.Reshape((quarter, quarter, 2 * channels))(h)
    h = layers.Conv2DTranspose(channels, 3, strides=2, padding="same", activation="relu")(h)
    h = layers.Conv2DTranspose(1, 3, strides=2, padding="same", activation="sigmoid")(h)
    return keras.Model(image, layers.Reshape((size, size), name="denoised")(h), name=name)


def code_unit_patterns(model: keras.Model, images: np.ndarray, n: int) -> np.ndarray:
    """What drives the `n` most active code units: the gradient of each unit's activation with
    respect to the input pixels, averaged over `images`, as a (pixels, n) matrix.

    For a dense first layer these would simply be its weights (as in Vincent et al.'s figures);
    here the code sits behind two convolutions, so we ask the network itself which input pattern
    raises each unit. Units that never fire on these images (ReLU units can die) are skipped.
    """
    encoder = keras.Model(model.input, model.get_layer("code").output)
    x = tf.convert_to_tensor(images)
    busiest = np.argsort(-encoder(x).numpy().mean(axis=0))[:n]
    with tf.GradientTape() as tape:
        tape.watch(x)
        codes = tf.gather(encoder(x), busiest, axis=1)
    jacobian = tape.batch_jacobian(codes, x)  # (images, n, height, width)
    return tf.reduce_mean(jacobian, axis=0).numpy().reshape(len(busiest), -1).T


def compile_for(model: keras.Model, learning_rate: float, epochs: int, steps_per_epoch: int) -> keras.Model:
    schedule = keras.optimizers.schedules.CosineDecay(learning_rate, decay_steps=epochs * steps_per_epoch)
    model.compile(optimizer=keras.optimizers.Adam(schedule), loss="binary_crossentropy", jit_compile=use_xla())
    return model


def split_holdout(data: Dataset, holdout: int) -> tuple[np.ndarray, np.ndarray]:
    """Training images, and the last `holdout` ones kept apart for choices and validation."""
    if not 0 < holdout < len(data.x_train):
        raise SettingError(
            f"HOLDOUT={holdout}: must be at least 1 and less than the {len(data.x_train)} training images"
        )
    return data.x_train[:-holdout], data.x_train[-holdout:]


def sweep(
    model: keras.Model, corruption: Corruption, levels: list[float], x_test: np.ndarray, held: np.ndarray
) -> list[dict[str, Any]]:
    """PSNR of the corrupted test images, of the model's output, and of the best classical
    denoiser (chosen, with its parameter, on the held-out images at that level)."""
    rows = []
    for level in levels:
        noisy_corruption = corruption.at(level)
        noisy = noisy_corruption(x_test, TEST_SEED)
        tuned = max(baselines.tune_all(noisy_corruption(held, TEST_SEED + 1), held), key=lambda t: t.held_out_psnr_db)
        denoised = model.predict(noisy, batch_size=1000, verbose=0)
        rows.append(
            {
                "level": level,
                "noisy_psnr_db": float(psnr_per_image(x_test, noisy).mean()),
                "dae_psnr_db": float(psnr_per_image(x_test, denoised).mean()),
                "best_baseline": tuned.label,
                "best_baseline_psnr_db": float(psnr_per_image(x_test, tuned(noisy)).mean()),
            }
        )
        row = rows[-1]
        print(
            f"  level {level:<5g} corrupted {row['noisy_psnr_db']:6.2f} dB   autoencoder {row['dae_psnr_db']:6.2f} dB"
            f"   {row['best_baseline']:<28} {row['best_baseline_psnr_db']:6.2f} dB"
        )
    return rows


def run(
    corruption: Corruption,
    data: Dataset,
    settings: dict[str, Any],
    out: Path,
    level_name: str,
) -> dict[str, Any]:
    """Train, evaluate, sweep and save one denoising chapter; returns what metrics.json holds.

    `settings` must hold CHANNELS, CODE_UNITS, EPOCHS, PLAIN_EPOCHS, BATCH_SIZE, LEARNING_RATE, SEED,
    HOLDOUT, SWEEP_LEVELS and BASELINE_TUNING_IMAGES.
    """
    s = settings
    x_fit, x_held = split_holdout(data, s["HOLDOUT"])
    held_noisy = corruption(x_held, TEST_SEED + 1)
    x_test_noisy = corruption(data.x_test, TEST_SEED)  # the same corrupted test set on every run
    print(f"data: {len(x_fit):,} training, {len(x_held):,} held-out and {len(data.x_test):,} test images")
    print(f"corruption: {corruption.describe()}")

    def train(name: str, noise: Corruption | None, epochs: int, validation: tuple) -> tuple:
        """Build and train one autoencoder of the shared shape; `noise=None` trains it plain."""
        steps = -(-len(x_fit) // s["BATCH_SIZE"])
        model = build_denoiser(s["CHANNELS"], s["CODE_UNITS"], f"{name}_autoencoder", s["IMAGE_SIZE"])
        model = compile_for(model, s["LEARNING_RATE"], epochs, steps)
        history, seconds = train_autoencoder(
            model,
            x_fit,
            noise,
            epochs=epochs,
            batch_size=s["BATCH_SIZE"],
            seed=s["SEED"],
            validation=validation,
            resume_dir=backup_folder(out, settings, name),  # Ctrl-C, then rerun: resumes here
            tensorboard_dir=out / "tensorboard" / name if s.get("TENSORBOARD") else None,
            preview=held_noisy[:8],
        )
        return model, history, seconds

    print("\n== Training the denoising autoencoder (corrupted in, clean out) ==")
    dae, dae_history, dae_seconds = train("denoising", corruption, s["EPOCHS"], (held_noisy, x_held))
    print("\n== Training a plain autoencoder of the same shape (clean in, clean out) ==")
    plain, plain_history, plain_seconds = train("plain", None, s["PLAIN_EPOCHS"], (x_held, x_held))

    print("\n== Evaluating on the corrupted test set ==")
    started = time.perf_counter()
    denoised = dae.predict(x_test_noisy, batch_size=1000, verbose=0)  # the corrupted images go in
    plain_out = plain.predict(x_test_noisy, batch_size=1000, verbose=0)
    rows = {
        "corrupted input": image_quality(data.x_test, x_test_noisy),
        "denoising autoencoder": image_quality(data.x_test, denoised),
        "plain autoencoder": image_quality(data.x_test, plain_out),
    }
    tuning = slice(0, s["BASELINE_TUNING_IMAGES"])
    tuned = baselines.tune_all(held_noisy[tuning], x_held[tuning])
    baseline_outputs = {}
    for t in tuned:
        baseline_outputs[t.denoiser.name] = t(x_test_noisy)
        rows[t.label] = image_quality(data.x_test, baseline_outputs[t.denoiser.name])
    print(f"\nTest set: {len(data.x_test):,} images, {corruption.describe()}")
    print(f"{'':<36}{'PSNR (dB)':>10}{'SSIM':>8}")
    for name, q in rows.items():
        print(f"{name:<36}{q['psnr_db']:>10.2f}{q['ssim']:>8.3f}")
    best = max(tuned, key=lambda t: rows[t.label]["psnr_db"])

    print(f"\n== Sweeping the {level_name} (model trained at {corruption.level:g}) ==")
    sweep_rows = sweep(dae, corruption, list(s["SWEEP_LEVELS"]), data.x_test, x_held[tuning])
    eval_seconds = time.perf_counter() - started

    plotting.image_rows(
        out / "denoising.png",
        {
            "clean": data.x_test,
            "corrupted": x_test_noisy,
            "denoising AE": denoised,
            "plain AE": plain_out,
            best.denoiser.name: baseline_outputs[best.denoiser.name],
        },
        n=12,
        title=f"Test images, {corruption.describe()}",
    )
    plotting.curves(
        out / "sweep.png",
        [r["level"] for r in sweep_rows],
        {
            "denoising autoencoder": [r["dae_psnr_db"] for r in sweep_rows],
            "best classical denoiser": [r["best_baseline_psnr_db"] for r in sweep_rows],
            "corrupted input": [r["noisy_psnr_db"] for r in sweep_rows],
        },
        xlabel=level_name,
        ylabel="test PSNR (dB)",
        title=f"One model trained at {corruption.level:g}, tested at every level",
        marker_at=corruption.level,
    )
    plotting.loss_curves(
        out / "loss.png",
        {"denoising AE": dae_history, "plain AE": plain_history},
        ylabel="binary cross-entropy per pixel",
    )
    plotting.filter_grids(
        out / "filters.png",
        {
            "denoising AE": code_unit_patterns(dae, x_held[:200], 64),
            "plain AE": code_unit_patterns(plain, x_held[:200], 64),
        },
        n=64,
    )

    metrics = {
        "settings": settings,
        "data": data.source,
        "n_train": len(x_fit),
        "n_held_out": len(x_held),
        "n_test": len(data.x_test),
        "noise": corruption.as_dict(),
        "noisy_psnr_db": rows["corrupted input"]["psnr_db"],
        "noisy_ssim": rows["corrupted input"]["ssim"],
        "dae_psnr_db": rows["denoising autoencoder"]["psnr_db"],
        "dae_ssim": rows["denoising autoencoder"]["ssim"],
        "plain_ae_psnr_db": rows["plain autoencoder"]["psnr_db"],
        "plain_ae_ssim": rows["plain autoencoder"]["ssim"],
        "baselines": {
            t.denoiser.name: {
                "psnr_db": rows[t.label]["psnr_db"],
                "ssim": rows[t.label]["ssim"],
                "parameter": {t.denoiser.parameter: t.value},
            }
            for t in tuned
        },
        "best_baseline": best.denoiser.name,
        "sweep": sweep_rows,
        "train_seconds": round(dae_seconds, 1),
        "plain_train_seconds": round(plain_seconds, 1),
        "eval_seconds": round(eval_seconds, 1),
        "loss_history": {"dae": dae_history, "plain": plain_history},
    }
    save_model(dae, out / "model.keras")
    save_json(out / "metrics.json", metrics)
    return metrics
