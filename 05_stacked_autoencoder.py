r"""
Title: Stacked denoising autoencoders: greedy layer-wise pretraining for a classifier
Description: Pretrain a deep network one layer at a time, each layer a denoising autoencoder of
    the codes below it, then fine-tune it as a digit classifier, against the same network pretrained
    without noise and started from random weights, with few labels and with all (Vincent et al.
    2010).
Run: python 05_stacked_autoencoder.py                                     (the full run)
     python 05_stacked_autoencoder.py --train_limit=5000 --pretrain_epochs=5 \
         --pretrain_batch_size=32 --epochs=5 --few_label_draws=1 --few_label_steps=500 \
         --few_label_probe_steps=200                                      (a quick look)
"""

# %%
import math
import time
from typing import NamedTuple

from common import plotting
from common.batches import shuffled_batches
from common.corruption import Corruption
from common.data import holdout_split, load_data
from common.devices import describe, jit_compile
from common.errors import DataError, SettingError
from common.labels import balanced_subset, balanced_subset_problem
from common.outputs import save_json, save_model
from common.script import finish, start
from common.stages import Stages
from common.training import backup_folder, check_finite, progress_verbosity, train_autoencoder

import keras
import numpy as np
from keras import layers

# --- hyperparameters: edit here, or override on the command line (--epochs=10) ---
# data
DATASET = "mnist"  # "mnist" or "fashion_mnist" (ignored when DATA is set)
DATA = None  # an .npz, a folder of MNIST IDX files, or a folder of your own images (see the README)
IMAGE_SIZE = 28  # images are made grey squares of IMAGE_SIZE x IMAGE_SIZE pixels
TRAIN_LIMIT = None  # use only the first N training images (None: all 60,000)
# (a sixth, where other chapters hold out a twelfth: Vincent et al. held out 10,000 of MNIST's
# 60,000)
VALIDATION_SIZE = None  # the last N training images, held out to decide when to stop (None: a
#                         sixth, at most 10,000)
# greedy layer-wise pretraining
HIDDEN_UNITS = (1000, 500, 250)  # widths of the pretrained layers, bottom to top
MASKING = 0.5  # fraction of the pixels set to 0 in layer 1's input, in the SDAE (0, and
#                CODE_MASKING 0: an SAE)
CODE_MASKING = 0.7  # fraction of the codes set to 0 in the input of each layer above it, in the
#                     SDAE
PRETRAIN_EPOCHS = 15  # passes over the training images, for each layer
PRETRAIN_BATCH_SIZE = 256  # examples per gradient step, in pretraining
PRETRAIN_LEARNING_RATE = 1e-3  # Adam's step size, decayed to zero over each layer's training
#                                (cosine)
# few labels
FEW_LABELS = (100, 1000)  # numbers of labelled images (as many of each class); sizes the labels
#                           cannot give are skipped
FEW_LABEL_DRAWS = 3  # independent draws of those images (and of the random weights) at each N;
#                      errors are averaged
FEW_LABEL_PROBE_STEPS = 500  # first, gradient steps that train only the softmax layer, on the
#                              frozen hidden layers
FEW_LABEL_STEPS = 1000  # then, steps that train every layer (no validation set with few labels: a
#                         fixed budget)
# classification with all labels
EPOCHS = 30  # at most this many passes over the labelled images, for each classifier with all
#              labels
BATCH_SIZE = 128  # images per gradient step, in every classifier's fine-tuning
LEARNING_RATE = 1e-3  # Adam's step size, decayed to zero over EPOCHS (cosine), or over each few-
#                       label phase
PATIENCE_EPOCHS = 10  # stop when the validation error has not improved for this many epochs
DROPOUT = 0.5  # dropout after every hidden layer, while fine-tuning
INPUT_DROPOUT = 0.2  # dropout on the input pixels, while fine-tuning
SEED = 0  # seeds every random draw: NumPy's, Python's and the backend's, the corruptions and few-
#           label draws too
STRATEGY = None  # None: one device; "mirrored": split every batch over all local devices
# output
OUTPUT_DIR = None  # where figures, metrics.json and the models go (None:
#                    outputs/05_stacked_autoencoder)

PUBLISHED = {  # Vincent et al. (2010), Table 3: test error (%) on MNIST with all its labels
    "sdae": 1.28,  # SDAE-3
    "sae": 1.40,  # SAE-3
    "dbn": 1.24,  # DBN-3
    "svm_rbf": 1.40,  # an SVM with an RBF kernel
}

# %%
"""
## Introduction

Deep networks trained from random weights used to get stuck: the gradient that reaches the bottom
layers of a deep sigmoid network (the units of the time) is tiny and noisy. Hinton & Salakhutdinov
(2006) and Bengio et al. (2007) got around it by *greedy layer-wise pretraining*: train the first
layer alone, as an autoencoder of the pixels; freeze it, and train the second as an autoencoder of
the first layer's codes; and so on up. Each layer is a shallow problem that trains easily, and the
stack is a good start for the deep network, which is then *fine-tuned* as a whole.

Vincent et al. (2010) made each layer a *denoising* autoencoder: layer k sees its input with a
fraction of the values set to zero, a fresh draw for every batch, and must rebuild the clean input.
The stacked denoising autoencoder (SDAE) learns features that a plain stacked autoencoder (SAE) does
not: most of the SAE's first-layer filters stay close to noise, the SDAE's become blobs and pieces
of strokes (`filters.png`).

    pixels --[DAE 1]--> 1000 codes --[DAE 2]--> 500 codes --[DAE 3]--> 250 codes

The stack is then put under a softmax layer and fine-tuned as a digit *classifier*, against the
SAE and random weights. Where it pays is when labels are few: with 100 or 1,000 labelled images
the SDAE's classifier makes far fewer errors than the same network from random weights. With all
50,000 labels, dropout and Adam, the three end close: over three seeds the SDAE leads by 0.01 to
0.35 points, where a seed moves each figure by about 0.1 (docs/05_stacked_autoencoder.md runs
them). (Chapter 06 unrolls such a stack into a deep autoencoder.)
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
stages = Stages(backup_folder(out, settings, "stages"), SEED)  # Ctrl-C, then rerun: resumes here

# %%
"""
## Prepare the data

The last VALIDATION_SIZE training images are held out: their labels only decide when the
all-label fine-tuning stops, and nothing is trained on them, not even the pretraining. By default
they are a sixth of the training images, at most 10,000: the 50,000 / 10,000 split of Vincent et
al. The other training images are pretrained on, without their labels, and labelled for the
classifiers. Few-label training draws N of them (N/10 of each class), FEW_LABEL_DRAWS times for each
N in FEW_LABELS. The test images only give the figures at the end. A folder of your own images
needs one sub-folder per class: this chapter is about labels.
"""
data = load_data(DATA, DATASET, TRAIN_LIMIT, IMAGE_SIZE)
print(f"data: {data.describe()}")
if not data.labelled:
    raise DataError(
        f"{DATA or data.source}: has no labels; this chapter trains classifiers, so it needs one "
        "sub-folder of images per class (folder/<class>/*.png), or an .npz with y_train and "
        "y_test (06 needs no labels)"
    )
classes = len(data.class_names)
x_train, x_val = holdout_split(
    data.x_train, VALIDATION_SIZE, "VALIDATION_SIZE", fraction=1 / 6, cap=10_000
)
y_train = data.y_train[: len(x_train)]
y_val = data.y_train[len(x_train) :]
x_pixels = x_train.reshape(len(x_train), -1)  # the pretraining's data: one row of pixels an image
few_label_draws = {}
for n in FEW_LABELS:
    problem = balanced_subset_problem(y_train, n, classes)
    if problem:
        print(f"few labels: {n:,} skipped, {problem} (FEW_LABELS sets the sizes)")
        continue
    few_label_draws[n] = [
        balanced_subset(y_train, n, SEED + draw, classes) for draw in range(FEW_LABEL_DRAWS)
    ]
if FEW_LABELS and not few_label_draws:
    print(
        "few labels: no size in FEW_LABELS can be drawn from these labels, so that section is "
        "skipped"
    )
print(
    f"training (pretraining and labels): {len(x_train):,}; validation: {len(x_val):,}; test: "
    f"{len(data.x_test):,}"
)

# %%
"""
## Greedy layer-wise pretraining

One layer is a one-hidden-layer autoencoder `x -> h -> x` of whatever it is given: the pixels for
layer 1, the codes of the layers below for the others. Its encoder is a ReLU layer; its decoder a
sigmoid trained with binary cross-entropy on pixels, a ReLU trained with squared error on codes. A
*denoising* layer sees its input through masking noise, a fresh draw for every batch (the
corruption is the model's first layer, active only in training, as in chapters 02-04), and must
rebuild the clean input. Each layer is trained with Adam (step size decayed to zero, cosine), then
frozen, and the clean codes it gives the training images are the next layer's data. The SDAE
masks every layer's input (MASKING of the pixels, CODE_MASKING of the codes above), the SAE none.
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
    schedule = keras.optimizers.schedules.CosineDecay(learning_rate, max(1, total_steps))
    return keras.optimizers.Adam(schedule)


def pretrain_layer(x, units, corruption, *, pixels, epochs, batch_size, learning_rate, seed):
    """Train one layer as an autoencoder of the (N, inputs) array `x`, with `corruption` applied
    to its input, afresh for every batch (None: a plain autoencoder)."""
    activation = "relu"
    decoder_activation = "sigmoid" if pixels else "relu"
    inputs = keras.Input(shape=(x.shape[1],))
    h = inputs if corruption is None else corruption.layer(seed)(inputs)
    h = layers.Dense(units, activation=activation, name="encoder")(h)
    outputs = layers.Dense(x.shape[1], activation=decoder_activation, name="decoder")(h)
    model = keras.Model(inputs, outputs, name=f"layer_{x.shape[1]}_{units}")
    model.compile(
        optimizer=adam_cosine(learning_rate, epochs * math.ceil(len(x) / batch_size)),
        loss="binary_crossentropy" if pixels else "mse",
        jit_compile=jit_compile(),  # XLA: each step, mask and all, compiled into one program
    )
    history, seconds = train_autoencoder(model, x, x, epochs=epochs, batch_size=batch_size)
    return PretrainedLayer(
        encoder=model.get_layer("encoder").get_weights(),
        decoder=model.get_layer("decoder").get_weights(),
        activation=activation,
        decoder_activation=decoder_activation,
        history=history,
        seconds=seconds,
    )


def encode(stack, x):
    """The (clean) codes of `x` (N, inputs) at the top of `stack`: each layer's ReLU(x W + b)."""
    h = x
    for layer in stack:
        kernel, bias = layer.encoder
        h = np.maximum(h @ kernel + bias, 0)
    return h.astype(np.float32)


def pretrain_stack(name, x, widths, maskings, seed):
    """Greedy layer-wise pretraining: layer k is an autoencoder of the clean codes of layers
    1..k-1 (of the pixels `x` for layer 1), with its own input masked at its level in `maskings`
    (one fraction a layer; 0: none). Each layer is a stage of the run."""
    stack = []
    codes = x
    for k, (units, level) in enumerate(zip(widths, maskings, strict=True)):
        corruption = Corruption("masking", level) if level > 0 else None
        what = f"masking {level:.0%}" if level else "no corruption"
        print(f"\n-- layer {k + 1}: {codes.shape[1]} -> {units}, {what}")
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


layers_above = len(HIDDEN_UNITS) - 1
print(f"\n== Pretraining the SDAE, {' -> '.join(map(str, HIDDEN_UNITS))} ==")
sdae_stack = pretrain_stack(
    "sdae", x_pixels, HIDDEN_UNITS, (MASKING,) + (CODE_MASKING,) * layers_above, SEED
)
print(f"\n== Pretraining the SAE, {' -> '.join(map(str, HIDDEN_UNITS))} (no corruption) ==")
sae_stack = pretrain_stack("sae", x_pixels, HIDDEN_UNITS, (0.0,) * len(HIDDEN_UNITS), SEED)
# where each classifier's hidden layers start
initial_weights = {"sdae": sdae_stack, "sae": sae_stack, "random": None}
names = {"sdae": "SDAE", "sae": "SAE", "random": "random weights"}

# %%
"""
## The classifier

Three copies of one network, image -> HIDDEN_UNITS (ReLU) -> 10 softmax scores, differing only
in where their hidden layers start: the SDAE's pretrained weights, the SAE's, or random weights
(Keras' default, Glorot uniform). Dropout on the pixels and after every hidden layer while it is
fine-tuned (at every step, a random fraction of the values set to 0, so that no unit can count on
any other: it keeps a large network from learning its few labels by heart); the loss is the
cross-entropy of the labels.
"""


def build_classifier(widths, stack, *, dropout, input_dropout, name, size=28, classes=10):
    """A size x size image -> ReLU layers of `widths` -> softmax scores for `classes` classes,
    the hidden layers started from `stack`'s pretrained encoders (None: random weights)."""
    if stack is not None and [layer.units for layer in stack] != list(widths):
        raise SettingError(
            f"pretrained widths {[layer.units for layer in stack]} do not match {list(widths)}"
        )
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


def classifier(name, stack):
    """The chapter's classifier: image -> HIDDEN_UNITS -> class scores, started from `stack` (or
    random)."""
    return build_classifier(
        HIDDEN_UNITS,
        stack,
        dropout=DROPOUT,
        input_dropout=INPUT_DROPOUT,
        name=name,
        size=IMAGE_SIZE,
        classes=classes,
    )


def error_pct(model, x, y):
    """Percentage of `x` whose highest class score is not the label."""
    scores = model.predict(x, batch_size=2000, verbose=0)
    return float(100 * np.mean(scores.argmax(axis=1) != y))


# %%
"""
## Classification with few labels

With only N labelled images, a project has no validation set to spare, so none is used here: every
network gets the same fixed budget, in two phases of Adam (step size decayed to zero over each).
First FEW_LABEL_PROBE_STEPS steps train only the softmax layer on the frozen hidden layers (a
*linear probe*), then FEW_LABEL_STEPS train every layer: a fresh softmax layer sends large, random
gradients down, and letting it settle first keeps them from wrecking pretrained features (Kumar et
al., 2022: LP-FT). The SAE's and the random network get the same two phases. The draw of the N
images moves a test error by up to a few points at 100 labels, a few tenths at 1,000, so each N is
drawn FEW_LABEL_DRAWS times and the figures are means over the draws.
"""


def fine_tune_fixed(model, train, *, steps, batch_size, learning_rate, seed, probe_steps=0):
    """Train on the labels of `train` for `probe_steps` steps of the softmax layer alone, then
    `steps` steps of every layer, in passes over the images, each in a new order (all of them in
    a batch, when they are no more than `batch_size`). Returns the loss of each phase (the mean
    over its steps) and the seconds taken."""
    x, y = train
    batch_size = min(batch_size, len(x))
    hidden = [layer for layer in model.layers if layer.name.startswith("hidden_")]
    began = time.perf_counter()
    losses = []
    for phase, (phase_steps, train_hidden) in enumerate(((probe_steps, False), (steps, True))):
        if phase_steps == 0:
            continue
        for layer in hidden:
            layer.trainable = train_hidden
        model.compile(
            optimizer=adam_cosine(learning_rate, phase_steps),
            loss="sparse_categorical_crossentropy",
            jit_compile=jit_compile(on_tensorflow=False),  # XLA on a CPU draws dropout masks slowly
        )
        batches = shuffled_batches(x, y, batch_size, seed + phase, steps=phase_steps)
        history = model.fit(
            batches,
            epochs=1,
            steps_per_epoch=phase_steps,
            shuffle=False,  # the batches are shuffled already
            callbacks=[keras.callbacks.TerminateOnNaN()],
            verbose=0,
        )
        check_finite(history.history)
        losses.append(history.history["loss"][0])
    return losses, time.perf_counter() - began


def fine_tune_few_labels(name, stack, train, seed):
    """Fine-tune the chapter's classifier on a few labelled images for a fixed number of steps;
    its test error (%)."""
    model = classifier(name, stack)
    fine_tune_fixed(
        model,
        train,
        steps=FEW_LABEL_STEPS,
        batch_size=BATCH_SIZE,
        learning_rate=LEARNING_RATE,
        seed=seed,
        probe_steps=FEW_LABEL_PROBE_STEPS,
    )
    return error_pct(model, data.x_test, data.y_test)


few_labels = {}
for n, draws in few_label_draws.items():
    few_labels[n] = {"indices": draws, "sdae": [], "sae": [], "random": []}
    for draw, chosen in enumerate(draws):
        train = (x_train[chosen], y_train[chosen])
        for weights_name, stack in initial_weights.items():
            stage = f"{weights_name}_{n}_labels_draw_{draw + 1}"
            error = stages.run(stage, fine_tune_few_labels, stage, stack, train, SEED + draw)
            few_labels[n][weights_name].append(error)
        errors = "   ".join(f"{names[s]} {few_labels[n][s][-1]:6.2f} %" for s in initial_weights)
        print(f"{n:>6,} labels, draw {draw + 1}: test error {errors}")

# %%
"""
## Classification with all labels

Each classifier is fine-tuned on every labelled image, at most EPOCHS epochs with Adam and a
cosine-decayed step size, watching the error on the validation images: *early stopping* ends the
training when it has not improved for PATIENCE_EPOCHS epochs, and keeps the weights of the epoch
with the lowest validation error.
"""


def fine_tune_classifier(
    model, train, validation, *, epochs, batch_size, learning_rate, patience, seed
):
    """Train on the labels of `train` for at most `epochs`, in a new order every epoch, watching
    the error on `validation`: stop when it has not improved for `patience` epochs, and keep the
    weights of the best epoch. Returns the history, the seconds taken and the (1-based) epoch
    kept."""
    x, y = train
    model.compile(
        optimizer=adam_cosine(learning_rate, epochs * math.ceil(len(x) / batch_size)),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
        jit_compile=jit_compile(on_tensorflow=False),  # XLA on a CPU draws dropout masks slowly
    )
    stopping = keras.callbacks.EarlyStopping(
        monitor="val_accuracy", mode="max", patience=patience, restore_best_weights=True
    )
    began = time.perf_counter()
    history = model.fit(
        shuffled_batches(
            x, y, batch_size, seed
        ),  # as fit(x, y, shuffle=True), read faster (common/batches.py)
        epochs=epochs,
        steps_per_epoch=math.ceil(len(x) / batch_size),
        shuffle=False,  # the batches are shuffled already
        validation_data=validation,
        validation_batch_size=2000,
        callbacks=[keras.callbacks.TerminateOnNaN(), stopping],
        verbose=progress_verbosity(),
    )
    check_finite(history.history)
    return history.history, time.perf_counter() - began, stopping.best_epoch + 1


def fine_tune_all_labels(name, stack, train, validation):
    """Fine-tune the chapter's classifier on every labelled image, stopping early on the validation
    error."""
    model = classifier(f"{name}_classifier", stack)
    history, _, kept_epoch = fine_tune_classifier(
        model,
        train,
        validation,
        epochs=EPOCHS,
        batch_size=BATCH_SIZE,
        learning_rate=LEARNING_RATE,
        patience=PATIENCE_EPOCHS,
        seed=SEED,
    )
    return {"weights": model.get_weights(), "history": history, "kept_epoch": kept_epoch}


classifiers = {}
histories = {}
kept_epoch = {}
validation_error = {}
test_error = {}
for weights_name, stack in initial_weights.items():
    print(
        f"\n== Fine-tuning the {names[weights_name]} classifier on {len(x_train):,} labelled "
        "images =="
    )
    stage = f"{weights_name}_classifier"
    result = stages.run(
        stage, fine_tune_all_labels, weights_name, stack, (x_train, y_train), (x_val, y_val)
    )
    model = classifier(stage, stack)
    model.set_weights(result["weights"])
    classifiers[weights_name] = model
    histories[weights_name] = result["history"]
    kept_epoch[weights_name] = result["kept_epoch"]
    validation_error[weights_name] = error_pct(model, x_val, y_val)
    test_error[weights_name] = error_pct(model, data.x_test, data.y_test)
    print(
        f"kept epoch {kept_epoch[weights_name]}, validation error "
        f"{validation_error[weights_name]:.2f} %"
    )

# %%
"""
## Results

A test error is a count of mistakes, and a count has its noise: on n test images, an error rate p
has a standard error of sqrt(p (1 - p) / n), about 0.11 points for 1.3 % of 10,000 images. Figures
closer than about twice that are a tie.
"""
averaged = f"mean of {FEW_LABEL_DRAWS} draws" if FEW_LABEL_DRAWS > 1 else "one draw"
few_label_means = {}
for n, result in few_labels.items():
    few_label_means[n] = {
        weights_name: float(np.mean(result[weights_name])) for weights_name in initial_weights
    }
if few_labels:
    print(f"\nTest error (%) with few labels, {averaged}:")
    print(
        f"  {'labels':>8}{'SDAE':>8}{'SAE':>8}{'random weights':>16}"
        f"{'SDAE errs less than random by':>32}"
    )
    for n, mean in few_label_means.items():
        # a share of random weights' errors, not percentage points
        fewer = 1 - mean["sdae"] / mean["random"]
        print(
            f"  {n:>8,}{mean['sdae']:>8.2f}{mean['sae']:>8.2f}{mean['random']:>16.2f}{fewer:>32.1%}"
        )

n_test = len(data.x_test)
standard_error = {
    s: 100 * math.sqrt(e / 100 * (1 - e / 100) / n_test) for s, e in test_error.items()
}
print(
    f"\nTest error (%) on {n_test:,} test images, {len(x_train):,} labels (+- one standard error):"
)
print(f"  {'':<34}{'here':>15}{'published':>11}")
for weights_name in initial_weights:
    published = PUBLISHED.get(weights_name)
    here = f"{test_error[weights_name]:.2f} +- {standard_error[weights_name]:.2f}"
    print(
        f"  {names[weights_name]:<34}{here:>15}{'' if published is None else f'{published:>11.2f}'}"
    )
print(
    f"  {'DBN-3 / SVM-RBF (published only)':<34}{'':>15}{PUBLISHED['dbn']:>6.2f} / "
    f"{PUBLISHED['svm_rbf']:.2f}"
)

# %%
"""
## Visualize and save
"""
plotting.filter_grids(
    out / "filters.png",
    {
        "SAE, no corruption: first-layer filters": sae_stack[0].encoder[0],
        f"SDAE, masking {MASKING:.0%}: first-layer filters": sdae_stack[0].encoder[0],
    },
    n=100,
)
if few_labels:
    plotting.curves(
        out / "few_labels.png",
        list(few_labels),
        {
            names[weights_name]: [result[weights_name] for result in few_labels.values()]
            for weights_name in initial_weights
        },
        xlabel="labelled training images",
        ylabel=f"test error (%), {averaged}"
        + (" (band: best to worst)" if FEW_LABEL_DRAWS > 1 else ""),
        title="The same network, fine-tuned on few labels",
        logx=True,
    )
pretraining_losses = {}
for k, layer in enumerate(sdae_stack):
    pretraining_losses[f"SDAE layer {k + 1} ({layer.units})"] = layer.history
for k, layer in enumerate(sae_stack):
    pretraining_losses[f"SAE layer {k + 1} ({layer.units})"] = layer.history
plotting.loss_curves(
    out / "pretraining_loss.png",
    pretraining_losses,
    ylabel="reconstruction loss (cross-entropy, then squared error)",
)
errors = {}  # error (%) per epoch, on the training images (with dropout) and the validation images
for weights_name, history in histories.items():
    errors[names[weights_name]] = {
        "loss": [100 * (1 - a) for a in history["accuracy"]],
        "val_loss": [100 * (1 - a) for a in history["val_accuracy"]],
    }
plotting.loss_curves(
    out / "classification_error.png", errors, ylabel="error (%), training with dropout / validation"
)

few_label_figures = {}
for n, result in few_labels.items():
    few_label_figures[str(n)] = {
        "mean": few_label_means[n],
        "draws": {weights_name: result[weights_name] for weights_name in initial_weights},
        "indices": [
            chosen.tolist() for chosen in result["indices"]
        ],  # of each draw, in the training images
    }
metrics = {
    "settings": settings,
    "keras": describe(),
    "data": data.source,
    "n_train": len(x_train),
    "n_validation": len(x_val),
    "n_test": n_test,
    "validation_indices": [len(x_train), len(data.x_train)],
    "few_labels": few_label_figures or None,
    "test_error_pct": test_error,
    "test_error_standard_error_pct": standard_error,
    "validation_error_pct": validation_error,
    "kept_epoch": kept_epoch,
    "published_test_error_pct": PUBLISHED,
    "pretraining_loss": {
        "sdae": [layer.history["loss"] for layer in sdae_stack],
        "sae": [layer.history["loss"] for layer in sae_stack],
    },
    "classifier_history": histories,
    "seconds": {
        "pretraining": round(sum(k.seconds for k in sdae_stack + sae_stack), 1),
        "total": round(time.perf_counter() - started, 1),  # all but the saving
    },
}
save_model(classifiers["sdae"], out / "model.keras")
save_json(out / "metrics.json", metrics)
stages.finished()
headline = ", ".join(f"{names[s]} {e:.2f} %" for s, e in test_error.items())
if few_labels:
    smallest = min(few_labels)
    few = ", ".join(f"{names[s]} {few_label_means[smallest][s]:.2f} %" for s in initial_weights)
    headline = f"with {smallest:,} labels: {few}; with all: {headline}"
finish(out, f"test error {headline}", started)
