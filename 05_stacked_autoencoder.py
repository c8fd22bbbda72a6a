"""
Title: Stacked denoising autoencoders: greedy layer-wise pretraining for a classifier
Description: Pretrain a deep network one layer at a time, each layer a denoising autoencoder of
    the codes below it, then fine-tune it as a digit classifier, against the same network pretrained
    without noise and started from random weights, with all labels and with few (Vincent et al. 2010).
Run: python 05_stacked_autoencoder.py   (add --train_limit=5000 --pretrain_epochs=2 --epochs=3 --few_label_draws=1 --few_label_steps=100 for a quick look)
"""  # noqa: E501

# %%
import math
import time
from typing import NamedTuple

from common import plotting
from common.corruption import Corruption
from common.data import holdout_split, load_data
from common.devices import use_xla
from common.errors import DataError, SettingError
from common.labels import balanced_subset, balanced_subset_problem
from common.outputs import save_json, save_model
from common.script import finish, start
from common.stages import Stages
from common.training import backup_folder, check_finite, progress_verbosity, train_autoencoder

import keras
import numpy as np
import tensorflow as tf
from keras import layers

# --- hyperparameters: edit here, or override on the command line (--epochs=10) ---
# data
DATASET = "mnist"  # "mnist" or "fashion_mnist" (ignored when DATA is set)
DATA = None  # an .npz, a folder of MNIST IDX files, or a folder of your own images (see the README)
IMAGE_SIZE = 28  # images are made grey squares of IMAGE_SIZE x IMAGE_SIZE pixels
TRAIN_LIMIT = None  # use only the first N training images (None: all 60,000)
VALIDATION_SIZE = None  # last N training images, whose labels only decide when to stop (None: a sixth, at most 10,000)
# greedy layer-wise pretraining
HIDDEN_UNITS = (1000, 500, 250)  # widths of the pretrained layers, bottom to top
MASKING = 0.5  # fraction of the pixels set to 0 by layer 1's corruption (0: a plain autoencoder)
UPPER_MASKING = 0.7  # fraction of the codes set to 0 for each layer above it, in the SDAE
PRETRAIN_EPOCHS = 15  # passes over the training images, for each layer
PRETRAIN_BATCH_SIZE = 256  # examples per gradient step, in pretraining
PRETRAIN_LEARNING_RATE = 1e-3  # Adam's step size, decayed to zero over each layer's training (cosine)
# classification
EPOCHS = 50  # at most this many passes over the labelled images, for each classifier with all labels
BATCH_SIZE = 128  # images per gradient step, in every classifier's fine-tuning
LEARNING_RATE = 1e-3  # Adam's step size, decayed to zero over EPOCHS (cosine), or over each few-label phase
PATIENCE_EPOCHS = 10  # stop when the validation error has not improved for this many epochs
DROPOUT = 0.5  # dropout after every hidden layer, while fine-tuning
INPUT_DROPOUT = 0.2  # dropout on the input pixels, while fine-tuning
# few labels
FEW_LABELS = (100, 1000)  # numbers of labelled images (as many of each class); sizes the labels cannot give are skipped
FEW_LABEL_DRAWS = 3  # independent draws of those images (and of the random weights) at each N; errors are averaged
FEW_LABEL_PROBE = 500  # first, gradient steps that train only the softmax layer, on the frozen hidden layers
FEW_LABEL_STEPS = 1000  # then, steps that train every layer (no validation set with few labels: a fixed budget)
SEED = 0  # seeds NumPy, Python and TensorFlow, the corruptions and the few-label draws
STRATEGY = None  # None: one device; "mirrored": split every batch over all local GPUs (or 2 CPU devices)
# output
OUTPUT_DIR = None  # where figures, metrics.json and the models go (None: outputs/05_stacked_autoencoder)

PUBLISHED = {  # figures this chapter sets its own against
    "test_error_pct": {"svm_rbf": 1.40, "sae": 1.40, "dbn": 1.24, "sdae": 1.28},  # Vincent et al. (2010), Table 3
}

# %%
"""
## Introduction

Deep networks trained from random weights used to get stuck: the gradient that reaches the bottom
layers of a deep sigmoid network is tiny and noisy. Hinton & Salakhutdinov (2006) and Bengio et al.
(2007) got around it by *greedy layer-wise pretraining*: train the first layer alone, as an
autoencoder of the pixels; freeze it, and train the second as an autoencoder of the first layer's
codes; and so on up. Each layer is a shallow problem that trains easily, and the stack is a good
start for the deep network, which is then *fine-tuned* as a whole.

Vincent et al. (2010) made each layer a *denoising* autoencoder: layer k sees its input with a
fraction of the values set to zero, a fresh draw for every batch, and must rebuild the clean input
(MASKING of the pixels for layer 1, UPPER_MASKING of the codes above). The paper's best MNIST
classifier used 25 % on every layer; 50 % and 70 % give better features when labels are few. The
stacked denoising autoencoder (SDAE) learns features that a plain stacked autoencoder (SAE) does
not: its first-layer filters turn from blobs into stroke detectors.

    pixels --[DAE 1]--> 1000 codes --[DAE 2]--> 500 codes --[DAE 3]--> 250 codes

The stack is then put under a softmax layer and fine-tuned as a digit *classifier*, against the
SAE and random weights, with all the labels and with few. (Chapter 06 unrolls such a stack into a
deep autoencoder.)
"""


# %%
"""
## Setup

Apply the command line's overrides (`--help` lists them), check the settings, and seed every
random generator with SEED. Each training below is a *stage*: `stages.run(name, train, *args)`
keeps what `train` returns, so after Ctrl-C the same command loads the finished stages and gives
the figures of a run that was never stopped.
"""
started = time.perf_counter()
settings, out = start(globals())
for name in ("MASKING", "UPPER_MASKING", "DROPOUT", "INPUT_DROPOUT"):
    value, what = settings[name], "a dropout rate" if "DROPOUT" in name else "a fraction of inputs set to 0"
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
        raise SettingError(f"{name}={value!r}: {what} must lie in [0, 1)")
for name, counted, least in (("FEW_LABEL_PROBE", "steps", 0), ("FEW_LABEL_DRAWS", "draws", 1)):
    value = settings[name]
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        raise SettingError(f"{name}={value!r}: a number of {counted} must be a whole number, {least} or more")
if not all(isinstance(n, int) and not isinstance(n, bool) and n > 0 for n in FEW_LABELS):
    raise SettingError(f"FEW_LABELS={FEW_LABELS!r}: numbers of labelled images must be whole numbers, 1 or more")
stages = Stages(backup_folder(out, settings, "stages"), SEED)  # Ctrl-C, then rerun: resumes here

# %%
"""
## Prepare the data

Pretraining sees all the training images, without labels. The classifiers learn from the labels
of all but the last VALIDATION_SIZE (by default a sixth, at most 10,000), which only decide when
fine-tuning stops. Few-label training draws N images (N/10 of each class) from the labelled part,
FEW_LABEL_DRAWS times for each N in FEW_LABELS. The test images only give the figures at the end.
A folder of your own images needs one sub-folder per class: this chapter is about labels.
"""
data = load_data(DATA, DATASET, TRAIN_LIMIT, IMAGE_SIZE)
print(f"data: {data.describe()}")
if not data.labelled:
    raise DataError(
        f"{DATA or data.source}: has no labels; this chapter trains classifiers, so it needs one sub-folder of "
        "images per class (folder/<class>/*.png), or an .npz with y_train and y_test (06 needs no labels)"
    )
x_all = data.x_train.reshape(len(data.x_train), -1)
few_label_draws = {}
classes = len(data.class_names)
x_lab, x_val = holdout_split(data.x_train, VALIDATION_SIZE, "VALIDATION_SIZE", fraction=1 / 6, cap=10_000)
y_lab, y_val = data.y_train[: len(x_lab)], data.y_train[len(x_lab) :]
for n in FEW_LABELS:
    problem = balanced_subset_problem(y_lab, n, classes)
    if problem:
        print(f"few labels: {n:,} skipped, {problem} (FEW_LABELS sets the sizes)")
        continue
    few_label_draws[n] = [balanced_subset(y_lab, n, SEED + draw, classes) for draw in range(FEW_LABEL_DRAWS)]
if FEW_LABELS and not few_label_draws:
    print("few labels: no size in FEW_LABELS can be drawn from these labels, so that section is skipped")
print(f"labelled for fine-tuning: {len(x_lab):,}; validation: {len(x_val):,}; test: {len(data.x_test):,}")

# %%
"""
## Greedy layer-wise pretraining

One layer is a one-hidden-layer autoencoder `x -> h -> x` of whatever it is given: the pixels for
layer 1, the codes of the layers below for the others. Its encoder is a ReLU layer; its decoder a
sigmoid trained with binary cross-entropy on pixels, a ReLU trained with squared error on codes. A
*denoising* layer sees its input through masking noise, a fresh draw for every batch, and must
rebuild the clean input. Each layer is trained with Adam (step size decayed to zero, cosine), then
frozen, and the clean codes it gives the training images are the next layer's data. The SDAE masks
every layer's input, the SAE none.
"""


class PretrainedLayer(NamedTuple):
    """One trained layer of a stack: its encoder and the decoder that undid it."""

    encoder: list[np.ndarray]  # [kernel (inputs, units), bias (units,)]
    decoder: list[np.ndarray]  # [kernel (units, inputs), bias (inputs,)]
    activation: str  # of the encoder: "relu"
    decoder_activation: str  # "sigmoid" when it rebuilds pixels, "relu" when it rebuilds ReLU codes
    history: dict[str, list[float]]
    seconds: float

    @property
    def units(self) -> int:
        return self.encoder[0].shape[1]


def adam_cosine(learning_rate, total_steps):
    """Adam with its step size decayed to zero over `total_steps` (cosine)."""
    return keras.optimizers.Adam(keras.optimizers.schedules.CosineDecay(learning_rate, max(1, total_steps)))


def pretrain_layer(x, units, corruption, *, pixels, epochs, batch_size, learning_rate, seed):
    """Train one layer as an autoencoder of the (N, inputs) array `x`, with `corruption` applied
    to its input, afresh for every batch (None: a plain autoencoder)."""
    activation = "relu"
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


def encode(stack, x, batch_size=2000):
    """The (clean) codes of `x` (N, inputs) at the top of `stack`, as float32."""
    out = []
    for first in range(0, len(x), batch_size):
        h = tf.convert_to_tensor(x[first : first + batch_size])
        for layer in stack:
            kernel, bias = layer.encoder
            h = tf.matmul(h, kernel) + bias
            if layer.activation == "relu":
                h = tf.nn.relu(h)
        out.append(h.numpy())
    return np.concatenate(out).astype(np.float32)


def pretrain_stack(stages, name, x, widths, maskings, seed):
    """Greedy layer-wise pretraining: layer k is an autoencoder of the clean codes of layers
    1..k-1 (of the pixels `x` for layer 1), with its own input masked at its level in `maskings`
    (one fraction a layer; 0: none). Each layer is a stage of the run."""
    stack, codes = [], x
    for k, (units, level) in enumerate(zip(widths, maskings, strict=True)):
        corruption = Corruption("masking", level) if level > 0 else None
        print(
            f"\n-- layer {k + 1}: {codes.shape[1]} -> {units}, "
            + (f"masking {level:.0%}" if level else "no corruption")
        )
        layer = stages.run(
            f"{name}_layer_{k + 1}",
            pretrain_layer,
            codes,
            units,
            corruption,
            pixels=k == 0,
            epochs=PRETRAIN_EPOCHS,
            batch_size=PRETRAIN_BATCH_SIZE,
            learning_rate=PRETRAIN_LEARNING_RATE,
            seed=seed + k,
        )
        stack.append(layer)
        codes = encode([layer], codes)  # the clean codes feed the next layer
    return stack


print(f"\n== Pretraining the SDAE, {' -> '.join(map(str, HIDDEN_UNITS))} ==")
sdae_maskings = (MASKING,) + (UPPER_MASKING,) * (len(HIDDEN_UNITS) - 1)  # pixels, then codes
sdae_stack = pretrain_stack(stages, "sdae", x_all, HIDDEN_UNITS, sdae_maskings, SEED)
print(f"\n== Pretraining the SAE, {' -> '.join(map(str, HIDDEN_UNITS))} (no corruption) ==")
sae_stack = pretrain_stack(stages, "sae", x_all, HIDDEN_UNITS, (0.0,) * len(HIDDEN_UNITS), SEED)

# %%
"""
## Classification with all labels

Three copies of one network, image -> HIDDEN_UNITS (ReLU) -> 10 softmax scores, differing
only in where their hidden layers start: the SDAE's pretrained weights, the SAE's, or random
(Keras' default, Glorot uniform). All three get the same fine-tuning: cross-entropy on the
labels, Adam with a cosine-decayed step size, dropout on the pixels and after every hidden
layer, at most EPOCHS epochs, and early stopping, which keeps the weights of the
epoch with the lowest validation error.
"""


def build_classifier(widths, stack, *, dropout, input_dropout, name, size=28, classes=10):
    """A size x size image -> ReLU layers of `widths` -> softmax scores for `classes` classes,
    the hidden layers started from `stack`'s pretrained encoders (None: random weights)."""
    if stack is not None and [layer.units for layer in stack] != list(widths):
        raise SettingError(f"pretrained widths {[layer.units for layer in stack]} do not match {list(widths)}")
    image = keras.Input(shape=(size, size), name="image")
    h = layers.Flatten()(image)
    h = layers.Dropout(input_dropout, name="input_dropout")(h)
    for k, units in enumerate(widths):
        h = layers.Dense(units, activation="relu", name=f"hidden_{k + 1}")(h)
        h = layers.Dropout(dropout, name=f"dropout_{k + 1}")(h)
    scores = layers.Dense(classes, activation="softmax", name="class_scores")(h)
    model = keras.Model(image, scores, name=name)
    for k, layer in enumerate(stack or []):
        model.get_layer(f"hidden_{k + 1}").set_weights(layer.encoder)
    return model


def classifier(name, stack, classes):
    """The chapter's classifier: image -> HIDDEN_UNITS -> class scores, started from `stack` (or random)."""
    return build_classifier(
        HIDDEN_UNITS, stack, dropout=DROPOUT, input_dropout=INPUT_DROPOUT, name=name, size=IMAGE_SIZE, classes=classes
    )


def fine_tune_classifier(model, train, validation, *, epochs, batch_size, learning_rate, patience):
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
    began = time.perf_counter()
    watch = {"validation_data": validation, "validation_batch_size": 2000, "shuffle": True}
    callbacks = [keras.callbacks.TerminateOnNaN(), stopping]
    history = model.fit(
        x, y, epochs=epochs, batch_size=batch_size, callbacks=callbacks, verbose=progress_verbosity(), **watch
    )
    history = history.history
    check_finite(history)
    return history, time.perf_counter() - began, stopping.best_epoch + 1


def fine_tune_all_labels(name, stack, train, validation, classes):
    """Fine-tune the chapter's classifier on every labelled image, stopping early on the validation error."""
    model = classifier(f"{name}_classifier", stack, classes)
    history, _, kept_epoch = fine_tune_classifier(
        model,
        train,
        validation,
        epochs=EPOCHS,
        batch_size=BATCH_SIZE,
        learning_rate=LEARNING_RATE,
        patience=PATIENCE_EPOCHS,
    )
    return {"weights": model.get_weights(), "history": history, "kept_epoch": kept_epoch}


def test_error_pct(model, x, y):
    """Percentage of `x` whose highest class score is not the label."""
    scores = model.predict(x, batch_size=2000, verbose=0)
    return float(100 * np.mean(scores.argmax(axis=1) != y))


starts = {"sdae": sdae_stack, "sae": sae_stack, "scratch": None}
classifiers, histories, test_error, validation_error, kept_epoch = {}, {}, {}, {}, {}
for name, stack in starts.items():
    print(f"\n== Fine-tuning the {name.upper()} classifier on {len(x_lab):,} labelled images ==")
    result = stages.run(
        f"{name}_classifier", fine_tune_all_labels, name, stack, (x_lab, y_lab), (x_val, y_val), classes
    )
    model = classifier(f"{name}_classifier", stack, classes)
    model.set_weights(result["weights"])
    classifiers[name], histories[name], kept_epoch[name] = model, result["history"], result["kept_epoch"]
    validation_error[name] = test_error_pct(model, x_val, y_val)
    test_error[name] = test_error_pct(model, data.x_test, data.y_test)
    print(f"{name}: kept epoch {kept_epoch[name]}, validation error {validation_error[name]:.2f} %")

# %%
"""
## Classification with few labels

With N labelled images there is no validation set to spare: every network gets the same fixed
budget, in two phases of Adam (step size decayed to zero over each). First FEW_LABEL_PROBE steps
train only the softmax layer on the frozen hidden layers (a *linear probe*), then FEW_LABEL_STEPS
train every layer: a fresh softmax layer sends large, random gradients down, and letting it settle
first keeps them from wrecking pretrained features (Kumar et al., 2022: LP-FT). The random network
gets the same two phases. The draw of the N images moves a test error by several tenths of a point,
so each N is drawn FEW_LABEL_DRAWS times and the figures are means over the draws.
"""


def fine_tune_fixed(model, train, *, steps, batch_size, learning_rate, seed, probe_steps=0):
    """Train on the labels of `train` for `probe_steps` steps of the softmax layer alone, then
    `steps` steps of every layer, batches drawn from a reshuffled, repeated pass over the images.
    Returns the history (loss per block of steps) and the seconds taken."""
    x, y = train
    batch_size = min(batch_size, len(x))
    hidden = [layer for layer in model.layers if layer.name.startswith("hidden_")]
    began, history = time.perf_counter(), {"loss": []}
    for phase, (phase_steps, train_hidden) in enumerate(((probe_steps, False), (steps, True))):
        if phase_steps == 0:
            continue
        batches = tf.data.Dataset.from_tensor_slices((x, y.astype(np.int32))).shuffle(len(x), seed=seed + phase)
        batches = batches.repeat().batch(batch_size, drop_remainder=True).prefetch(tf.data.AUTOTUNE)  # one a phase
        for layer in hidden:
            layer.trainable = train_hidden
        loss = "sparse_categorical_crossentropy"  # without XLA, which on the CPU draws dropout masks slowly:
        model.compile(optimizer=adam_cosine(learning_rate, phase_steps), loss=loss, jit_compile=False)
        blocks = min(phase_steps, 20)  # the loss is logged 20 times a phase; the batches are already shuffled
        options = {"callbacks": [keras.callbacks.TerminateOnNaN()], "verbose": 0, "shuffle": False}
        logged = model.fit(batches, epochs=blocks, steps_per_epoch=phase_steps // blocks, **options).history
        check_finite(logged)
        history["loss"] += logged["loss"]
    return history, time.perf_counter() - began


def fine_tune_few_labels(name, stack, train, test, classes, seed):
    """Fine-tune the chapter's classifier on a few labelled images for a fixed number of steps;
    its test error (%)."""
    model = classifier(name, stack, classes)
    budget = {"steps": FEW_LABEL_STEPS, "probe_steps": FEW_LABEL_PROBE}
    fine_tune_fixed(model, train, batch_size=BATCH_SIZE, learning_rate=LEARNING_RATE, seed=seed, **budget)
    return test_error_pct(model, *test)


few_labels, test = {}, (data.x_test, data.y_test)
for n, draws in few_label_draws.items():
    few_labels[n] = {"indices": draws, "sdae": [], "scratch": []}
    for draw, chosen in enumerate(draws):
        train = (x_lab[chosen], y_lab[chosen])
        for name in ("sdae", "scratch"):
            stage = f"{name}_{n}_labels_draw_{draw + 1}"
            error = stages.run(stage, fine_tune_few_labels, stage, starts[name], train, test, classes, SEED + draw)
            few_labels[n][name].append(error)
        sdae_error, scratch_error = few_labels[n]["sdae"][-1], few_labels[n]["scratch"][-1]
        print(f"{n:>6,} labels, draw {draw + 1}: test error SDAE {sdae_error:6.2f} %   random {scratch_error:6.2f} %")

# %%
"""
## Results
"""
print(f"\nTest error (%) on {len(data.x_test):,} test images, {len(x_lab):,} labels:")
print(f"  {'':<34}{'here':>7}{'published':>11}")
rows = (("SDAE (denoising pretraining)", "sdae"), ("SAE (plain pretraining)", "sae"))
for label, key in (*rows, ("random initialisation", "scratch")):
    published = PUBLISHED["test_error_pct"].get(key)
    print(f"  {label:<34}{test_error[key]:>7.2f}{'' if published is None else f'{published:>11.2f}'}")
print(f"  {'DBN-3 / SVM-RBF (published only)':<34}{'':>7}{'1.24 / 1.40':>11}")
averaged = f"mean of {FEW_LABEL_DRAWS} draws" if FEW_LABEL_DRAWS > 1 else "one draw"
few_label_means = {n: {name: float(np.mean(r[name])) for name in ("sdae", "scratch")} for n, r in few_labels.items()}
if few_labels:
    print(f"\nTest error (%) with few labels, {averaged}:")
    print(f"  {'labels':>8}{'SDAE':>8}{'random init':>13}{'SDAE lower by':>15}")
    for n, mean in few_label_means.items():
        sdae_error, scratch_error = mean["sdae"], mean["scratch"]
        print(f"  {n:>8,}{sdae_error:>8.2f}{scratch_error:>13.2f}{1 - sdae_error / scratch_error:>15.2%}")

# %%
"""
## Visualize and save
"""
filters = {"SAE, no corruption": sae_stack[0].encoder[0], f"SDAE, masking {MASKING:.0%}": sdae_stack[0].encoder[0]}
plotting.filter_grids(out / "filters.png", {f"{k}: first-layer filters": w for k, w in filters.items()}, n=100)
if few_labels:
    plotting.curves(
        out / "few_labels.png",
        list(few_labels),
        {
            "SDAE pretraining": [r["sdae"] for r in few_labels.values()],
            "random init": [r["scratch"] for r in few_labels.values()],
        },
        xlabel="labelled training images",
        ylabel=f"test error (%), {averaged}" + (", shaded from best to worst" if FEW_LABEL_DRAWS > 1 else ""),
        title="The same network, fine-tuned on few labels",
        logx=True,
    )
plotting.loss_curves(
    out / "pretraining_loss.png",
    {
        **{f"SDAE layer {k + 1} ({layer.units})": layer.history for k, layer in enumerate(sdae_stack)},
        **{f"SAE layer {k + 1} ({layer.units})": layer.history for k, layer in enumerate(sae_stack)},
    },
    ylabel="reconstruction loss (cross-entropy, then squared error)",
)
errors = {  # error (%) per epoch, on the training images (with dropout) and the validation images
    name.upper() if name != "scratch" else "random init": {
        "loss": [100 * (1 - a) for a in h["accuracy"]],
        "val_loss": [100 * (1 - a) for a in h["val_accuracy"]],
    }
    for name, h in histories.items()
}
plotting.loss_curves(out / "classification_error.png", errors, ylabel="error (%), training with dropout / validation")

metrics = {
    "settings": settings,
    "data": data.source,
    "n_pretrain": len(x_all),
    "n_labelled": len(x_lab),
    "n_validation": len(x_val),
    "n_test": len(data.x_test),
    "validation_indices": [len(x_lab), len(data.x_train)],
    "test_error_pct": test_error or None,
    "validation_error_pct": validation_error or None,
    "kept_epoch": kept_epoch or None,
    "few_labels": {
        str(n): {
            **few_label_means[n],  # "sdae" and "scratch": the means over the draws
            "sdae_draws": r["sdae"],
            "scratch_draws": r["scratch"],
            "indices": [chosen.tolist() for chosen in r["indices"]],  # of each draw, in the labelled part
        }
        for n, r in few_labels.items()
    }
    or None,
    "published": PUBLISHED,
    "seconds": {"pretraining": round(sum(k.seconds for k in sdae_stack + sae_stack), 1), "total": 0.0},
    "loss_history": {"sdae": [k.history["loss"] for k in sdae_stack], "sae": [k.history["loss"] for k in sae_stack]},
    "classifier_history": histories,
}
metrics["seconds"]["total"] = round(time.perf_counter() - started, 1)  # all but the saving
save_model(classifiers["sdae"], out / "model.keras")
save_json(out / "metrics.json", metrics)
stages.finished()
finish(out, "test error " + ", ".join(f"{name.upper()} {e:.2f} %" for name, e in test_error.items()), started)
