"""
Title: Stacked denoising autoencoders: greedy layer-wise pretraining
Description: Pretrain a deep network one layer at a time, each layer a denoising autoencoder of
    the codes below it, then fine-tune it as a deep autoencoder (against PCA) and as a digit
    classifier (against the same network started from random weights), with all labels and with few.
Run: python 05_stacked_autoencoder.py            (first look in under 2 minutes: see --help and the README)
"""

# %%
import time

import numpy as np

from common import plotting, stacked
from common.corruption import Corruption
from common.data import load_data
from common.devices import use_xla
from common.errors import SettingError
from common.outputs import save_json, save_model
from common.script import finish, start
from common.stages import Stages
from common.training import backup_folder, train_autoencoder

# --- hyperparameters: edit here, or override on the command line (--deep_epochs=10) ---
# data
DATASET = "mnist"  # "mnist" or "fashion_mnist" (ignored when DATA is set)
DATA = None  # an .npz, a folder of MNIST IDX files, or a folder of your own images (see the README)
IMAGE_SIZE = 28  # images are made grey squares of IMAGE_SIZE x IMAGE_SIZE pixels
TRAIN_LIMIT = None  # use only the first N training images (None: all 60,000)
VALIDATION_SIZE = 10000  # last N training images: their labels only decide when fine-tuning stops
# greedy layer-wise pretraining
HIDDEN_UNITS = (1000, 500, 250)  # widths of the pretrained layers, bottom to top (shared by both networks)
CODE_UNITS = 30  # the deep autoencoder's code: one more pretrained layer, linear, on top
MASKING = 0.5  # fraction of the pixels set to 0 by layer 1's corruption (0: a plain autoencoder)
UPPER_MASKING = 0.7  # fraction of the codes set to 0 for each layer above it, the code layer too
PRETRAIN_EPOCHS = 30  # passes over the 60,000 training images, for each layer
PRETRAIN_BATCH_SIZE = 256  # examples per gradient step, in pretraining
PRETRAIN_LEARNING_RATE = 1e-3  # Adam's step size, decayed to zero over each layer's training (cosine)
# deep autoencoder
DEEP_EPOCHS = 100  # passes over the training images, fine-tuning the unrolled autoencoder
DEEP_BATCH_SIZE = 256  # images per gradient step
DEEP_LEARNING_RATE = 1e-3  # Adam's step size, decayed to zero over the fine-tuning (cosine)
PCA_COMPONENTS = 30  # the linear baseline: PCA with this many components
# classification
FINETUNE_EPOCHS = 50  # at most this many passes over the labelled images, for every classifier
FINETUNE_BATCH_SIZE = 128  # images per gradient step
FINETUNE_LEARNING_RATE = 1e-3  # Adam's step size, decayed to zero over FINETUNE_EPOCHS (cosine)
PATIENCE_EPOCHS = 10  # stop when the validation error has not improved for this many epochs
DROPOUT = 0.5  # dropout after every hidden layer, while fine-tuning
INPUT_DROPOUT = 0.2  # dropout on the input pixels, while fine-tuning
# few labels
FEW_LABELS = (100, 1000, 10000)  # numbers of labelled images (balanced over the digits) to fine-tune with
FEW_LABEL_DRAWS = 3  # independent draws of those images (and of the random weights) at each N; errors are averaged
FEW_LABEL_PROBE = 500  # first, gradient steps that train only the softmax layer, on the frozen hidden layers
FEW_LABEL_STEPS = 2000  # then, steps that train every layer (no validation set with few labels: a fixed budget)
SEED = 0  # seeds NumPy, Python and TensorFlow, the corruptions and the few-label draws
STRATEGY = None  # None: one device; "mirrored": split every batch over all local GPUs (or 2 CPU devices)
# output
OUTPUT_DIR = None  # where figures, metrics.json and the models go (None: outputs/05_stacked_autoencoder)

PUBLISHED = {  # figures this chapter sets its own against
    "deep_ae_sq_error_per_image": 3.00,  # Hinton & Salakhutdinov (2006), 784-1000-500-250-30
    "pca30_sq_error_per_image": 13.87,  # the same paper, PCA with 30 components
    "test_error_pct": {"svm_rbf": 1.40, "sae": 1.40, "dbn": 1.24, "sdae": 1.28},  # Vincent et al. (2010), Table 3
}

# %%
"""
## Introduction

Deep networks trained from random weights used to get stuck: the gradient that reaches the
bottom layers of a deep sigmoid network is tiny and noisy. Hinton & Salakhutdinov (2006) and
Bengio et al. (2007) got around it by *greedy layer-wise pretraining*: train the first layer
alone, as an autoencoder of the pixels; freeze it, and train the second as an autoencoder of the
first layer's codes; and so on up. Each layer is a shallow problem that trains easily, and the
stack that comes out is a good starting point for the deep network, which is then *fine-tuned*
as a whole.

Vincent et al. (2010) made each layer a *denoising* autoencoder: layer k sees its input (the
clean codes of layers 1..k-1) with a fraction of the values set to zero, a fresh draw for
every batch, and must rebuild the clean input: MASKING of the pixels for layer 1, UPPER_MASKING
of the codes for the layers above. The paper's best MNIST classifier used 25 % on every layer
(`--masking=0.25 --upper_masking=0.25`); the defaults here, 50 % and 70 %, give better features
to start from when labels are few. The stacked denoising autoencoder (SDAE) learns
features that a plain stacked autoencoder (SAE) does not: its first-layer filters turn from
blobs into stroke detectors.

    pixels --[DAE 1]--> 1000 codes --[DAE 2]--> 500 codes --[DAE 3]--> 250 codes --[DAE 4]--> 30
           pretrained on     pretrained on      pretrained on       pretrained on
           masked pixels     masked codes 1     masked codes 2      masked codes 3

The pretrained layers are then used twice:

- unrolled with their decoders into one 784-1000-500-250-30-250-500-1000-784 *deep autoencoder*,
  fine-tuned on reconstruction and compared with PCA at the same 30 numbers;
- under a softmax layer, as a digit *classifier* fine-tuned on the labels, against the same
  network from random weights, with all labels and with only a few.
"""


def pretrain_stack(stages, name, x, widths, maskings, seed, on_pixels=True, linear_top=False):
    """Greedy layer-wise pretraining: layer k is an autoencoder of the clean codes of layers
    1..k-1, with its own input corrupted afresh for every batch by masking noise at its level in
    `maskings` (one fraction a layer; 0: none). The first layer rebuilds pixels when `on_pixels`;
    a `linear_top` layer gives a linear code. Each layer is a stage of the run: once trained, a
    rerun after Ctrl-C loads it instead of training it again."""
    stack, codes = [], x
    for k, (units, level) in enumerate(zip(widths, maskings, strict=True)):
        corruption = Corruption("masking", level) if level > 0 else None
        top = linear_top and k == len(widths) - 1
        print(f"\n-- layer {k + 1}: {codes.shape[1]} -> {units}{' (linear code)' if top else ''}, {describe(level)}")
        layer = stages.run(
            f"{name}_layer_{k + 1}",
            stacked.pretrain_layer,
            codes,
            units,
            corruption,
            pixels=on_pixels and k == 0,
            linear_code=top,
            epochs=PRETRAIN_EPOCHS,
            batch_size=PRETRAIN_BATCH_SIZE,
            learning_rate=PRETRAIN_LEARNING_RATE,
            seed=seed + k,
        )
        stack.append(layer)
        codes = stacked.encode([layer], codes)  # the clean codes feed the next layer
    return stack, codes


def describe(masking):
    return f"masking {masking:.0%}" if masking > 0 else "no corruption"


def fine_tune_deep(deep, x, resume_dir):
    """Fine-tune the unrolled autoencoder on reconstruction (backed up after every epoch)."""
    steps = -(-len(x) // DEEP_BATCH_SIZE)
    deep.compile(
        optimizer=stacked.adam_cosine(DEEP_LEARNING_RATE, DEEP_EPOCHS * steps),
        loss="binary_crossentropy",
        jit_compile=use_xla(),
    )
    history, seconds = train_autoencoder(
        deep, x, None, epochs=DEEP_EPOCHS, batch_size=DEEP_BATCH_SIZE, seed=SEED, resume_dir=resume_dir
    )
    return {"weights": deep.get_weights(), "history": history, "seconds": seconds}


def classifier(name, stack, classes):
    """Image -> HIDDEN_UNITS -> class scores, its hidden layers started from `stack` (or random)."""
    return stacked.build_classifier(
        HIDDEN_UNITS, stack, dropout=DROPOUT, input_dropout=INPUT_DROPOUT, name=name, size=IMAGE_SIZE, classes=classes
    )


def fine_tune_all_labels(name, stack, train, validation, classes):
    """Fine-tune on every labelled image, stopping early on the validation error."""
    model = classifier(f"{name}_classifier", stack, classes)
    history, _, kept_epoch = stacked.fine_tune_classifier(
        model,
        train,
        validation,
        epochs=FINETUNE_EPOCHS,
        batch_size=FINETUNE_BATCH_SIZE,
        learning_rate=FINETUNE_LEARNING_RATE,
        patience=PATIENCE_EPOCHS,
    )
    return {"weights": model.get_weights(), "history": history, "kept_epoch": kept_epoch}


def fine_tune_few_labels(name, stack, train, test, classes, seed):
    """Fine-tune on a few labelled images for a fixed number of steps; the test error (%)."""
    model = classifier(name, stack, classes)
    stacked.fine_tune_fixed(
        model,
        train,
        steps=FEW_LABEL_STEPS,
        batch_size=FINETUNE_BATCH_SIZE,
        learning_rate=FINETUNE_LEARNING_RATE,
        seed=seed,
        probe_steps=FEW_LABEL_PROBE,
    )
    return stacked.test_error_pct(model, *test)


# %%
"""
## Setup

Apply the command line's overrides to the constants above (`--help` lists them), create and
check the output folder, and seed every random generator with SEED.
"""
started = time.perf_counter()
settings, out = start(globals())
stacked.settings_check(settings)
stages = Stages(backup_folder(out, settings, "stages"), SEED)  # Ctrl-C, then rerun: resumes here

# %%
"""
## Prepare the data

Who sees what:

- pretraining, the deep autoencoder and PCA: all the training images, without labels;
- classification: the labels of the training images except the last VALIDATION_SIZE;
  those last ones are labelled validation images, used only to decide when fine-tuning stops;
- few labels: N labelled images (N/10 of each digit) drawn from the same labelled part,
  FEW_LABEL_DRAWS times over;
- the test images: only to report the figures at the end.

Images without labels (a folder of your own) still go through pretraining and the deep
autoencoder; the classification sections are skipped.
"""
data = load_data(DATA, DATASET, TRAIN_LIMIT, IMAGE_SIZE)
print(f"data: {data.describe()}")
x_all = data.x_train.reshape(len(data.x_train), -1)
classes, few_label_draws = 0, {}
if data.labelled:
    if not VALIDATION_SIZE < len(data.x_train):
        raise SettingError(
            f"VALIDATION_SIZE={VALIDATION_SIZE}: must be less than the {len(data.x_train)} training images"
        )
    classes = len(data.class_names)
    labelled = slice(0, len(data.x_train) - VALIDATION_SIZE)
    validating = slice(len(data.x_train) - VALIDATION_SIZE, None)
    x_lab, y_lab = data.x_train[labelled], data.y_train[labelled]
    x_val, y_val = data.x_train[validating], data.y_train[validating]
    few_label_draws = {
        n: [stacked.balanced_subset(y_lab, n, SEED + draw, classes) for draw in range(FEW_LABEL_DRAWS)]
        for n in FEW_LABELS
    }
    print(f"labelled for fine-tuning: {len(x_lab):,}; validation: {len(x_val):,}; test: {len(data.x_test):,}")
else:
    print(f"{data.source} has no labels: pretraining and the deep autoencoder only, no classification")

# %%
"""
## Greedy layer-wise pretraining

Two stacks of the same widths: the SDAE with masking noise on every layer's input (heavier on
the codes of the layers above than on the pixels), and the SAE with none. Each layer is
trained on its own, then frozen, and the clean codes it gives the training images are the
next layer's data.
"""
print(f"\n== Pretraining the SDAE, {' -> '.join(map(str, HIDDEN_UNITS))} ==")
sdae_maskings = (MASKING,) + (UPPER_MASKING,) * (len(HIDDEN_UNITS) - 1)  # pixels, then codes
sdae_stack, sdae_codes = pretrain_stack(stages, "sdae", x_all, HIDDEN_UNITS, sdae_maskings, SEED)
print(f"\n== Pretraining the SAE, {' -> '.join(map(str, HIDDEN_UNITS))} (no corruption) ==")
sae_stack, _ = pretrain_stack(stages, "sae", x_all, HIDDEN_UNITS, (0.0,) * len(HIDDEN_UNITS), SEED)

# %%
"""
## The deep autoencoder

One more denoising autoencoder, with a linear code of CODE_UNITS numbers, on top of the SDAE's
codes; then all the encoders and their decoders are unrolled into one deep autoencoder and
fine-tuned together on reconstruction (binary cross-entropy per pixel, clean in and out).
"""
print(f"\n== Pretraining the code layer, {HIDDEN_UNITS[-1]} -> {CODE_UNITS} ==")
code_seed = SEED + len(HIDDEN_UNITS)
code_stack, _ = pretrain_stack(
    stages, "code", sdae_codes, (CODE_UNITS,), (UPPER_MASKING,), code_seed, on_pixels=False, linear_top=True
)
deep = stacked.build_deep_autoencoder(sdae_stack + code_stack)
deep.summary(line_length=80)
pretrained_reconstruction = deep.predict(data.x_test, batch_size=2000, verbose=0)
print(f"\n== Fine-tuning the deep autoencoder for {DEEP_EPOCHS} epochs ==")
fine_tuned = stages.run("deep_ae", fine_tune_deep, deep, data.x_train, stages.subfolder("deep_ae_epochs"))
deep.set_weights(fine_tuned["weights"])
deep_history, deep_seconds = fine_tuned["history"], fine_tuned["seconds"]

# %%
"""
## Evaluate the deep autoencoder against PCA

The figure of merit of Hinton & Salakhutdinov: squared error summed over the 784 pixels,
averaged over the test images. PCA is fitted on the same training images.
"""
reconstruction = deep.predict(data.x_test, batch_size=2000, verbose=0)
pca_reconstruction = stacked.pca_reconstruction(data.x_train, data.x_test, PCA_COMPONENTS)
deep_error = stacked.squared_error_per_image(data.x_test, reconstruction)
pretrained_error = stacked.squared_error_per_image(data.x_test, pretrained_reconstruction)
pca_error = stacked.squared_error_per_image(data.x_test, pca_reconstruction)
print(f"\nSquared error per test image (sum over 784 pixels, mean over {len(data.x_test):,} images):")
print(f"  deep autoencoder, pretrained only      {pretrained_error:7.2f}")
print(f"  deep autoencoder, fine-tuned           {deep_error:7.2f}   (published: 3.00)")
print(f"  PCA, {PCA_COMPONENTS} components                   {pca_error:7.2f}   (published: 13.87)")

# %%
"""
## Classification with all labels

Three copies of one network, image -> HIDDEN_UNITS (ReLU) -> 10 softmax scores, differing
only in where their hidden layers start: the SDAE's pretrained weights, the SAE's, or random.
All three get the same fine-tuning: the same epochs, step sizes, dropout, and the same
early stopping, which keeps the weights of the epoch with the lowest validation error.
"""
starts = {"sdae": sdae_stack, "sae": sae_stack, "scratch": None} if data.labelled else {}
classifiers, histories, test_error, validation_error, kept_epoch = {}, {}, {}, {}, {}
for name, stack in starts.items():
    print(f"\n== Fine-tuning the {name.upper()} classifier on {len(x_lab):,} labelled images ==")
    result = stages.run(
        f"{name}_classifier", fine_tune_all_labels, name, stack, (x_lab, y_lab), (x_val, y_val), classes
    )
    model = classifier(f"{name}_classifier", stack, classes)
    model.set_weights(result["weights"])
    classifiers[name], histories[name], kept_epoch[name] = model, result["history"], result["kept_epoch"]
    validation_error[name] = stacked.test_error_pct(model, x_val, y_val)
    test_error[name] = stacked.test_error_pct(model, data.x_test, data.y_test)
    print(f"{name}: kept epoch {kept_epoch[name]}, validation error {validation_error[name]:.2f} %")

# %%
"""
## Classification with few labels

Pretraining used all the training images, without labels; now fine-tuning gets only N
labelled images, N/10 of each digit. With so few, there is no validation set to spare:
every network gets the same fixed budget of steps, in two phases. First FEW_LABEL_PROBE
steps train only the softmax layer on top of the frozen hidden layers; then FEW_LABEL_STEPS
steps train every layer. A freshly initialised softmax layer sends large, random gradients
down; letting it settle first keeps them from wrecking pretrained features that a thousand
labels could never learn again (Kumar et al., 2022). The network from random weights gets
exactly the same two phases.

Which N images are drawn, and where the random network starts, move a test error by
several tenths of a point at N = 1,000: as much as a real difference between recipes. So
each N is drawn FEW_LABEL_DRAWS times, both networks are fine-tuned on every draw, and the
figures reported are the averages over the draws.
"""
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
if data.labelled:
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
plotting.filter_grids(
    out / "filters.png",
    {
        "SAE, no corruption: first-layer filters": sae_stack[0].encoder[0],
        f"SDAE, masking {MASKING:.0%}: first-layer filters": sdae_stack[0].encoder[0],
    },
    n=100,
)
plotting.image_rows(
    out / "reconstructions.png",
    {
        "original": data.x_test,
        f"deep AE ({deep_error:.2f})": reconstruction,
        f"PCA {PCA_COMPONENTS} ({pca_error:.2f})": pca_reconstruction,
    },
    n=12,
    title=f"Test images through {CODE_UNITS} numbers (squared error per image)",
)
if few_labels:
    plotting.curves(
        out / "few_labels.png",
        list(FEW_LABELS),
        {
            "SDAE pretraining": [few_labels[n]["sdae"] for n in FEW_LABELS],
            "random initialisation": [few_labels[n]["scratch"] for n in FEW_LABELS],
        },
        xlabel="labelled training images",
        ylabel=f"test error (%), {averaged}" + (", shaded from best to worst" if FEW_LABEL_DRAWS > 1 else ""),
        title="The same network, fine-tuned on few labels",
        logx=True,
    )
plotting.loss_curves(
    out / "pretraining_loss.png",
    {f"layer {k + 1} ({layer.units})": layer.history for k, layer in enumerate(sdae_stack + code_stack)},
    ylabel="reconstruction loss (cross-entropy, then squared error)",
)
plotting.loss_curves(out / "deep_ae_loss.png", {"deep autoencoder": deep_history}, ylabel="cross-entropy per pixel")
if histories:
    plotting.loss_curves(
        out / "classification_error.png",
        {
            name.upper() if name != "scratch" else "random init": {
                "loss": [100 * (1 - a) for a in h["accuracy"]],
                "val_loss": [100 * (1 - a) for a in h["val_accuracy"]],
            }
            for name, h in histories.items()
        },
        ylabel="error (%), training with dropout / validation",
    )

metrics = {
    "settings": settings,
    "data": data.source,
    "n_pretrain": len(x_all),
    "n_labelled": len(x_lab) if data.labelled else 0,
    "n_validation": len(x_val) if data.labelled else 0,
    "n_test": len(data.x_test),
    "validation_indices": [validating.start, len(data.x_train)] if data.labelled else None,
    "deep_ae_sq_error_per_image": deep_error,
    "deep_ae_pretrained_only_sq_error_per_image": pretrained_error,
    "pca30_sq_error_per_image": pca_error,
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
    "seconds": {
        "pretraining": round(sum(layer.seconds for layer in sdae_stack + sae_stack + code_stack), 1),
        "deep_ae_fine_tuning": round(deep_seconds, 1),
        "total": round(time.perf_counter() - started, 1),
    },
    "loss_history": {
        "pretraining_sdae": [layer.history["loss"] for layer in sdae_stack + code_stack],
        "pretraining_sae": [layer.history["loss"] for layer in sae_stack],
        "deep_ae": deep_history["loss"],
        "classifiers": histories,
    },
}
if data.labelled:
    save_model(classifiers["sdae"], out / "model.keras")
save_model(deep, out / "deep_autoencoder.keras")
save_json(out / "metrics.json", metrics)
stages.finished()
headline = f"deep AE {deep_error:.2f} (PCA {pca_error:.2f}) squared error per image"
if test_error:
    headline += "; test error " + ", ".join(f"{name.upper()} {e:.2f} %" for name, e in test_error.items())
finish(out, headline, started)
