"""The mechanics of stacked autoencoders (chapter 05): one layer's denoising autoencoder, the
deep networks built from pretrained layers, their fine-tuning, and what they are measured with.

- `pretrain_layer` trains one layer as a (denoising) autoencoder on whatever it is given (pixels,
  or the codes of the layers below) and returns its encoder and decoder weights;
- `encode` runs data up through pretrained layers;
- `build_classifier` stacks pretrained (or fresh) encoder layers under a softmax layer;
- `build_deep_autoencoder` unrolls pretrained encoders and their decoders into one deep autoencoder;
- `fine_tune_classifier` trains a classifier on labels, choosing its epoch on a validation set;
  `fine_tune_fixed` trains one for a fixed number of steps (for a handful of labels);
- `balanced_subset`, `test_error_pct`, `squared_error_per_image` and `pca_reconstruction`.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

import keras
import numpy as np
import tensorflow as tf
from keras import layers

from common.corruption import Corruption
from common.devices import use_xla
from common.errors import SettingError
from common.metrics import mse_per_image
from common.training import check_finite, progress_verbosity, train_autoencoder


@dataclass
class PretrainedLayer:
    """One trained layer of a stack: its encoder and the decoder that undid it."""

    encoder: list[np.ndarray]  # [kernel (inputs, units), bias (units,)]
    decoder: list[np.ndarray]  # [kernel (units, inputs), bias (inputs,)]
    activation: str  # of the encoder: "relu", or "linear" for a code layer
    decoder_activation: str  # "sigmoid" when it rebuilds pixels, "relu" when it rebuilds ReLU codes
    history: dict[str, list[float]]
    seconds: float

    @property
    def units(self) -> int:
        return self.encoder[0].shape[1]


def adam_cosine(learning_rate: float, total_steps: int) -> keras.optimizers.Optimizer:
    """Adam with its step size decayed to zero over `total_steps` (cosine)."""
    return keras.optimizers.Adam(keras.optimizers.schedules.CosineDecay(learning_rate, max(1, total_steps)))


def pretrain_layer(
    x: np.ndarray,
    units: int,
    corruption: Corruption | None,
    *,
    pixels: bool,
    linear_code: bool = False,
    epochs: int,
    batch_size: int,
    learning_rate: float,
    seed: int,
) -> PretrainedLayer:
    """Train one layer as an autoencoder `x -> h -> x` on the (N, inputs) array `x`, with
    `corruption` applied to its input, afresh for every batch (None: a plain autoencoder).

    On pixels (`pixels=True`) the decoder is a sigmoid trained with binary cross-entropy; on the
    ReLU codes of a layer below it is a ReLU trained with squared error. The encoder is a ReLU,
    or linear when `linear_code` (the top of a deep autoencoder).
    """
    activation = "linear" if linear_code else "relu"
    decoder_activation = "sigmoid" if pixels else "relu"
    inputs = keras.Input(shape=(x.shape[1],))
    h = layers.Dense(units, activation=activation, name="encoder")(inputs)
    outputs = layers.Dense(x.shape[1], activation=decoder_activation, name="decoder")(h)
    model = keras.Model(inputs, outputs, name=f"layer_{x.shape[1]}_{units}")
    model.compile(
        optimizer=adam_cosine(learning_rate, epochs * math.ceil(len(x) / batch_size)),
        loss="binary_crossentropy" if pixels else "mse",
        jit_compile=use_xla(),
    )
    history, seconds = train_autoencoder(model, x, corruption, epochs=epochs, batch_size=batch_size, seed=seed)
    return PretrainedLayer(
        encoder=model.get_layer("encoder").get_weights(),
        decoder=model.get_layer("decoder").get_weights(),
        activation=activation,
        decoder_activation=decoder_activation,
        history=history,
        seconds=seconds,
    )


def encode(stack: list[PretrainedLayer], x: np.ndarray, batch_size: int = 2000) -> np.ndarray:
    """The (clean) codes of `x` (N, inputs) at the top of `stack`, as float32."""
    out = []
    for start in range(0, len(x), batch_size):
        h = tf.convert_to_tensor(x[start : start + batch_size])
        for layer in stack:
            kernel, bias = layer.encoder
            h = tf.matmul(h, kernel) + bias
            if layer.activation == "relu":
                h = tf.nn.relu(h)
        out.append(h.numpy())
    return np.concatenate(out).astype(np.float32)


def _set_weights(model: keras.Model, weights: dict[str, list[np.ndarray]]) -> keras.Model:
    """Copy pretrained weights into the layers of `model` named in `weights`."""
    for name, values in weights.items():
        model.get_layer(name).set_weights(values)
    return model


def build_classifier(
    widths: tuple[int, ...],
    stack: list[PretrainedLayer] | None,
    *,
    dropout: float,
    input_dropout: float,
    name: str,
    size: int = 28,
    classes: int = 10,
) -> keras.Model:
    """A size x size image -> ReLU layers of `widths` -> softmax scores for `classes` classes.

    With `stack`, the hidden layers start from its pretrained encoder weights; with None, from
    Keras' default random initialisation (Glorot uniform). Dropout (inactive at test time) is
    applied to the input and after every hidden layer while fine-tuning.
    """
    if stack is not None and [layer.units for layer in stack] != list(widths):
        raise SettingError(f"pretrained widths {[layer.units for layer in stack]} do not match {list(widths)}")
    image = keras.Input(shape=(size, size), name="image")
    h = layers.Flatten()(image)
    h = layers.Dropout(input_dropout, name="input_dropout")(h)
    for k, units in enumerate(widths):
        h = layers.Dense(units, activation="relu", name=f"hidden_{k + 1}")(h)
        h = layers.Dropout(dropout, name=f"dropout_{k + 1}")(h)
    scores = layers.Dense(classes, activation="softmax", name="class_scores")(h)
    pretrained = {f"hidden_{k + 1}": layer.encoder for k, layer in enumerate(stack or [])}
    return _set_weights(keras.Model(image, scores, name=name), pretrained)


def build_deep_autoencoder(stack: list[PretrainedLayer], name: str = "deep_autoencoder") -> keras.Model:
    """Unroll a pretrained stack: its encoders bottom to top, then its decoders top to bottom.

    784 -> 1000 -> 500 -> 250 -> [30] -> 250 -> 500 -> 1000 -> 784, every layer starting from the
    weights it had at the end of its own pretraining. The image comes back in [0, 1] (sigmoid).
    """
    size = math.isqrt(stack[0].encoder[0].shape[0])  # square images: 784 pixels are 28 x 28
    image = keras.Input(shape=(size, size), name="image")
    h = layers.Flatten()(image)
    pretrained = {}
    for k, layer in enumerate(stack):
        layer_name = "code" if k == len(stack) - 1 else f"encoder_{k + 1}"
        h = layers.Dense(layer.units, activation=layer.activation, name=layer_name)(h)
        pretrained[layer_name] = layer.encoder
    for k in reversed(range(len(stack))):
        layer = stack[k]
        h = layers.Dense(layer.decoder[0].shape[1], activation=layer.decoder_activation, name=f"decoder_{k + 1}")(h)
        pretrained[f"decoder_{k + 1}"] = layer.decoder
    reconstruction = layers.Reshape((size, size), name="reconstruction")(h)
    return _set_weights(keras.Model(image, reconstruction, name=name), pretrained)


def fine_tune_classifier(
    model: keras.Model,
    train: tuple[np.ndarray, np.ndarray],
    validation: tuple[np.ndarray, np.ndarray],
    *,
    epochs: int,
    batch_size: int,
    learning_rate: float,
    patience: int,
) -> tuple[dict[str, list[float]], float, int]:
    """Train on the labels of `train` for at most `epochs`, watching the error on `validation`:
    stop when it has not improved for `patience` epochs, and keep the weights of the best
    epoch. Returns the history, the seconds taken and the (1-based) epoch kept."""
    x, y = train
    model.compile(
        optimizer=adam_cosine(learning_rate, epochs * math.ceil(len(x) / batch_size)),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
        jit_compile=False,  # XLA on the CPU draws dropout masks slowly
    )
    stopping = keras.callbacks.EarlyStopping(
        monitor="val_accuracy", mode="max", patience=patience, restore_best_weights=True
    )
    started = time.perf_counter()
    history = model.fit(
        x,
        y,
        epochs=epochs,
        batch_size=batch_size,
        validation_data=validation,
        validation_batch_size=2000,
        callbacks=[keras.callbacks.TerminateOnNaN(), stopping],
        shuffle=True,
        verbose=progress_verbosity(),
    ).history
    check_finite(history)
    return history, time.perf_counter() - started, stopping.best_epoch + 1


def fine_tune_fixed(
    model: keras.Model,
    train: tuple[np.ndarray, np.ndarray],
    *,
    steps: int,
    batch_size: int,
    learning_rate: float,
    seed: int,
    probe_steps: int = 0,
) -> tuple[dict[str, list[float]], float]:
    """Train on the labels of `train` for a fixed number of gradient steps (batches drawn from a
    reshuffled, repeated pass over the images), with no validation set.

    With `probe_steps`, the first `probe_steps` steps train only the softmax layer, on top of the
    frozen hidden layers (a linear probe), and the next `steps` steps train every layer: the
    hidden layers start changing only once the top layer gives them sensible gradients, instead
    of the large, random ones of a freshly initialised softmax layer (Kumar et al., 2022: LP-FT).
    Returns the history (loss per block of steps) and the seconds taken."""
    x, y = train
    batch_size = min(batch_size, len(x))
    hidden = [layer for layer in model.layers if layer.name.startswith("hidden_")]
    started, history = time.perf_counter(), {"loss": []}
    for phase, (phase_steps, train_hidden) in enumerate(((probe_steps, False), (steps, True))):
        if phase_steps == 0:
            continue
        batches = (  # a new stream for each phase: only a stream's first pass is the same in every run
            tf.data.Dataset.from_tensor_slices((x, y.astype(np.int32)))
            .shuffle(len(x), seed=seed + phase, reshuffle_each_iteration=True)
            .repeat()
            .batch(batch_size, drop_remainder=True)
            .prefetch(tf.data.AUTOTUNE)
        )
        for layer in hidden:
            layer.trainable = train_hidden
        model.compile(
            optimizer=adam_cosine(learning_rate, phase_steps),
            loss="sparse_categorical_crossentropy",
            jit_compile=False,  # XLA on the CPU draws dropout masks slowly
        )
        blocks = min(phase_steps, 20)  # the loss is logged 20 times a phase
        phase = model.fit(
            batches,
            epochs=blocks,
            steps_per_epoch=phase_steps // blocks,
            callbacks=[keras.callbacks.TerminateOnNaN()],
            shuffle=False,  # the batches are already shuffled
            verbose=0,
        ).history
        check_finite(phase)
        history["loss"] += phase["loss"]
    return history, time.perf_counter() - started


def balanced_subset(labels: np.ndarray, n: int, seed: int, classes: int = 10) -> np.ndarray:
    """Indices of `n` examples, n/classes of each class, drawn at random (sorted)."""
    if n % classes:
        raise SettingError(f"{n} labelled images: must be a multiple of {classes}, the same number of each class")
    per_class = n // classes
    rng = np.random.default_rng(seed)
    chosen = []
    for digit in range(classes):
        candidates = np.flatnonzero(labels == digit)
        if len(candidates) < per_class:
            raise SettingError(
                f"{n} labelled images need {per_class} of each class; "
                f"only {len(candidates)} of class {digit} are available"
            )
        chosen.append(rng.choice(candidates, per_class, replace=False))
    return np.sort(np.concatenate(chosen))


def test_error_pct(model: keras.Model, x: np.ndarray, y: np.ndarray) -> float:
    """Percentage of `x` whose highest class score is not the label."""
    scores = model.predict(x, batch_size=2000, verbose=0)
    return float(100 * np.mean(scores.argmax(axis=1) != y))


def squared_error_per_image(reference: np.ndarray, estimate: np.ndarray) -> float:
    """Squared error summed over the pixels (784 of MNIST's), averaged over the images (Hinton &
    Salakhutdinov's figure of merit)."""
    pixels = int(np.prod(np.shape(reference)[1:]))
    return float(pixels * mse_per_image(reference, estimate).mean())


def pca_reconstruction(x_fit: np.ndarray, x: np.ndarray, n_components: int) -> np.ndarray:
    """Reconstruct `x` from its projection on the top `n_components` principal directions of
    `x_fit` (plain linear projection around the mean, not clipped)."""
    fit = x_fit.reshape(len(x_fit), -1).astype(np.float64)
    mean = fit.mean(axis=0)
    _, eigenvectors = np.linalg.eigh(np.cov(fit - mean, rowvar=False))  # ascending eigenvalues
    components = eigenvectors[:, ::-1][:, :n_components]
    flat = x.reshape(len(x), -1) - mean
    return (flat @ components @ components.T + mean).reshape(x.shape).astype(np.float32)


def settings_check(settings: dict[str, Any]) -> None:
    """One-line errors for settings of this chapter that the override code cannot check."""
    for name in ("MASKING", "UPPER_MASKING"):
        value = settings[name]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
            raise SettingError(f"{name}={value!r}: a fraction of inputs set to 0 must lie in [0, 1)")
    for name, counted, least in (("FEW_LABEL_PROBE", "steps", 0), ("FEW_LABEL_DRAWS", "draws", 1)):
        value = settings[name]
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            raise SettingError(f"{name}={value!r}: a number of {counted} must be a whole number, {least} or more")
    for name in ("DROPOUT", "INPUT_DROPOUT"):
        value = settings[name]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
            raise SettingError(f"{name}={value!r}: a dropout rate must lie in [0, 1)")
