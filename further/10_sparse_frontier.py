r"""
Title: Sparse autoencoders, further: sparsity against error, and the codes as features
Description: From the models chapter 10 saved, and more top-k and L1 models trained exactly as
    those were: how the error falls as an image may use more units, beside PCA; and how well a
    linear classifier reads the digits from each code, beside Makhzani & Frey (2013).
Run: python further/10_sparse_frontier.py                                         (the full run)
     python further/10_sparse_frontier.py --train_limit=5000 --classifier_epochs=50   (a quick look)
"""

# %%
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the project's root, for common/

import json
import math
import time

from common import plotting
from common.data import load_data
from common.devices import describe, jit_compile
from common.errors import DataError, MissingChapterError, SettingError
from common.metrics import mse_per_image
from common.outputs import PROJECT_ROOT, chapter_files, save_json
from common.pca import pca, pca_reconstruct
from common.script import chapter_definitions, finish, start
from common.stages import Stages
from common.training import backup_folder, check_finite, train_autoencoder

import keras
import numpy as np
from keras import layers

# --- hyperparameters: edit here, or override on the command line (--frontier_ks=(5,100)) ---
# data: the same as chapter 10's models were trained on (checked against its metrics.json)
DATASET = "mnist"  # "mnist" or "fashion_mnist" (ignored when DATA is set)
DATA = None  # an .npz, a folder of MNIST IDX files, or a folder of your own images (see the README)
IMAGE_SIZE = 28  # images are made grey squares of IMAGE_SIZE x IMAGE_SIZE pixels
TRAIN_LIMIT = None  # use only the first N training images (None: all 60,000)
# the frontier: more models, each trained as the chapter's (its EPOCHS, BATCH_SIZE, ...)
FRONTIER_KS = (10, 50)  # more top-k models, beside the chapter's (its K)
FRONTIER_L1_WEIGHTS = (3e-4, 3e-3)  # more L1 models, beside the chapter's (its L1_WEIGHT)
# the linear classifiers
CLASSIFIER_EPOCHS = 10  # passes of each linear classifier over the labelled training images
SEED = 0  # seeds every random draw: NumPy's, Python's and the backend's
# input and output
CHAPTER_DIR = None  # where 10_sparse_autoencoder.py saved its models (None:
#                     outputs/10_sparse_autoencoder)
CHAPTER_01_DIR = None  # where 01_basic_autoencoder.py saved model.keras, whose 32-number code is
#                        classified too (None: outputs/01_basic_autoencoder; left out if absent)
OUTPUT_DIR = None  # where figures and metrics.json go (None: outputs/10_sparse_frontier)

# Makhzani & Frey (2013), Table 1: test error (%) of logistic regression on MNIST features
PUBLISHED = {
    "k_sparse_k25": 1.35,  # the codes of a k-sparse autoencoder of 1,000 units, k = 25
    "raw_pixels": 7.20,  # the pixels themselves
}

# %%
"""
## Introduction

Chapter 10 trained a top-k model (K units kept) and an L1 model (penalty L1_WEIGHT) and set each
beside PCA at one point. Two questions go further:

- *The frontier.* How does the error fall as an image may use more units? More top-k models
  (FRONTIER_KS) and more L1 models (FRONTIER_L1_WEIGHTS) are trained here exactly as the chapter's
  (the same epochs, batch size, step size and auxiliary loss, read from its metrics.json), so that
  every point of a curve is trained alike; the chapter's two models are loaded, not trained again.
  PCA's curve is the linear reference: where a sparse code beats it, it is because each image
  picks its own units, where PCA gives every image the same components.
- *Features.* Are the sparse units features a classifier can use? A linear classifier (softmax
  regression) is trained on the frozen codes of each of the chapter's encoders, on the raw pixels,
  and on the 32-number code of chapter 01's autoencoder. Makhzani & Frey (2013) report 1.35 % test
  error on the codes of a k-sparse autoencoder of 1,000 units (k = 25) and 7.20 % on the pixels;
  their autoencoder trained far longer, with its encoder tied to its decoder and k lowered step by
  step, so expect the chapter's codes to stay above their 1.35 %.
"""

# %%
"""
## Setup

Apply the command line's overrides, create the output folder, seed every random generator; find
the chapter's saved models and settings (a one-line error names the command that makes them), and
define its layers (`TopK`) and its model without running it.
"""
started = time.perf_counter()
settings, out = start(
    globals(), checks={"FRONTIER_KS": "count", "FRONTIER_L1_WEIGHTS": "non_negative"}
)
chapter_metrics, topk_path, l1_path, unconstrained_path = chapter_files(
    "10_sparse_autoencoder",
    CHAPTER_DIR,
    "metrics.json",
    "models/topk.keras",
    "models/l1.keras",
    "models/unconstrained_encoder.keras",
)
chapter_dir = chapter_metrics.parent
trained_as = json.loads(chapter_metrics.read_text(encoding="utf-8"))["settings"]
for name in ("DATASET", "DATA", "IMAGE_SIZE", "TRAIN_LIMIT"):
    if settings[name] != trained_as[name]:
        raise SettingError(
            f"{name}={settings[name]!r}: the chapter's models in {chapter_dir} were trained with "
            f"{name}={trained_as[name]!r}; give the same"
        )
if max(FRONTIER_KS, default=0) > trained_as["CODE_DIM"]:
    raise SettingError(f"FRONTIER_KS={FRONTIER_KS!r}: the code has {trained_as['CODE_DIM']} units")
chapter = chapter_definitions(PROJECT_ROOT / "10_sparse_autoencoder.py")
stages = Stages(backup_folder(out, settings, "stages"), SEED)  # Ctrl-C, then rerun: resumes here

# %%
"""
## Prepare the data

The training images train the frontier's models; their labels train the linear classifiers. The
test images give every figure.
"""
data = load_data(DATA, DATASET, TRAIN_LIMIT, IMAGE_SIZE)
print(f"data: {data.describe()}")
if not data.labelled:
    raise DataError(
        f"{DATA or data.source}: has no labels; the linear classifiers need one sub-folder per "
        "class"
    )
x_train = data.x_train
x_test = data.x_test

# %%
"""
## The frontier: how many units an image uses, against how well it is rebuilt

Each new model is the chapter's network, built by the chapter's own `build_sparse_autoencoder`,
trained with the chapter's loss, optimizer and settings; a top-k model with the auxiliary loss on
its dead units, as the chapter's. Every point, the chapter's and the new, is scored the same way
on the test images: its mean squared error, and its L0, the mean number of units active in an
image's code, beside PCA with as many components.
"""
epochs = trained_as["EPOCHS"]
batch_size = trained_as["BATCH_SIZE"]


def train_weights(top_k, l1_weight, resume_dir):
    """A new model of the chapter's, trained as the chapter trains its own: its weights."""
    autoencoder, _ = chapter.build_sparse_autoencoder(
        trained_as["CODE_DIM"], IMAGE_SIZE, top_k, l1_weight
    )
    model = autoencoder  # the same weights either way
    if top_k is not None:
        dead_after = trained_as["DEAD_AFTER_IMAGES"]
        model = chapter.with_auxiliary_loss(autoencoder, dead_after, trained_as["AUXILIARY_WEIGHT"])
    steps = epochs * math.ceil(len(x_train) / batch_size)
    schedule = keras.optimizers.schedules.CosineDecay(trained_as["LEARNING_RATE"], steps)
    # under TensorFlow, XLA made these steps slower on a CPU
    use_xla = jit_compile(on_tensorflow=False)
    model.compile(optimizer=keras.optimizers.Adam(schedule), loss="mse", jit_compile=use_xla)
    train_autoencoder(
        model, x_train, x_train, epochs=epochs, batch_size=batch_size, resume_dir=resume_dir
    )
    return autoencoder.get_weights()


def load_or_train(name, top_k=None, l1_weight=0.0):
    """The autoencoder of stage `name`, trained now or loaded."""
    print(f"\n== {name}: {epochs} epochs, as the chapter's ==")
    weights = stages.run(name, train_weights, top_k, l1_weight, stages.subfolder(name))
    autoencoder, _ = chapter.build_sparse_autoencoder(
        trained_as["CODE_DIM"], IMAGE_SIZE, top_k, l1_weight
    )
    autoencoder.set_weights(weights)
    return autoencoder


pca_mean, pca_directions = pca(x_train, x_train[0].size)  # all of them, the most important first


def pca_test_mse(components):
    rebuilt = pca_reconstruct(x_test, pca_mean, pca_directions[:components])
    return float(mse_per_image(x_test, rebuilt).mean())


def encoder_of(autoencoder):
    """The autoencoder's encoder: image in, code out (the layer named "code")."""
    return keras.Model(autoencoder.input, autoencoder.get_layer("code").output)


def codes_of(encoder, images):
    return encoder.predict(images, batch_size=1000, verbose=0)


def test_figures(autoencoder):
    """Test MSE, L0 and PCA's test MSE with as many components, of one autoencoder."""
    reconstruction = autoencoder.predict(x_test, batch_size=1000, verbose=0)
    l0 = float((codes_of(encoder_of(autoencoder), x_test) > 0).sum(axis=1).mean())
    components = max(1, round(l0))
    return {
        "test_mse": float(mse_per_image(x_test, reconstruction).mean()),
        "mean_active_units": l0,
        "pca_components": components,
        "pca_test_mse": pca_test_mse(components),
        "epochs": epochs,
    }


topk_model = keras.models.load_model(topk_path)
l1_model = keras.models.load_model(l1_path)
frontier = {
    "topk": [test_figures(topk_model) | {"k": trained_as["K"], "source": "chapter 10"}],
    "l1": [test_figures(l1_model) | {"l1_weight": trained_as["L1_WEIGHT"], "source": "chapter 10"}],
}
for k in FRONTIER_KS:
    point = test_figures(load_or_train(f"topk_{k}", top_k=k))
    frontier["topk"].append(point | {"k": k, "source": "this script"})
for weight in FRONTIER_L1_WEIGHTS:
    point = test_figures(load_or_train(f"l1_{weight:g}", l1_weight=weight))
    frontier["l1"].append(point | {"l1_weight": weight, "source": "this script"})
for points in frontier.values():
    points.sort(key=lambda p: p["mean_active_units"])

print(f"\nTest images ({len(x_test):,}), every model trained for {epochs} epochs:")
print(f"{'':<24}{'trained by':<14}{'active units':>14}{'MSE':>9}{'PCA, as many':>14}")
for family, points in frontier.items():
    for p in points:
        label = f"top-k, k = {p['k']}" if family == "topk" else f"L1 penalty {p['l1_weight']:g}"
        figures = f"{p['mean_active_units']:>14.1f}{p['test_mse']:>9.5f}{p['pca_test_mse']:>14.5f}"
        print(f"{label:<24}{p['source']:<14}{figures}")

# Last, the chapter's L1 model beside the top-k frontier at as many active units: the price of
# getting sparsity from a penalty, which also shrinks the values it keeps, rather than from
# choosing units. The top-k frontier's error at the L1 model's L0 is read off the straight line
# between its two nearest points on a log scale (beyond the frontier's ends: the nearest end's).
chapter_l1 = next(p for p in frontier["l1"] if p["source"] == "chapter 10")
log_topk_l0 = np.log([p["mean_active_units"] for p in frontier["topk"]])
topk_mse = [p["test_mse"] for p in frontier["topk"]]
topk_at_l1 = np.interp(np.log(chapter_l1["mean_active_units"]), log_topk_l0, topk_mse)
l1_over_topk = float(chapter_l1["test_mse"] / topk_at_l1)
print(
    f"the chapter's L1 model ({chapter_l1['mean_active_units']:.1f} active units) errs "
    f"{l1_over_topk:.2f} times the top-k frontier at as many units"
)

# %%
"""
## Features for a classifier

A linear classifier (softmax regression: one dense layer of 10 scores) is trained on the frozen
codes of the labelled training images, standardized (see `linear_classifier_error`), and tested on
the test images' codes. The encoders are the chapter's, loaded; chapter 01's, if it was run, is its
autoencoder up to its layer named "code".
"""


def linear_classifier_error(train_features, test_features):
    """Test error (%) of softmax regression on `train_features`, standardized as a whole: each
    feature's mean subtracted, then all divided by one number, the standard deviation of them all.
    (Dividing each feature by its own deviation would blow the units that rarely fire up into
    large, noisy features, and the classifier would learn them by heart.)"""
    mean = train_features.mean(axis=0)
    scale = train_features.std()
    x = (train_features - mean) / scale
    softmax = layers.Dense(len(data.class_names), activation="softmax")
    classifier = keras.Sequential([keras.Input((x.shape[1],)), softmax])
    steps = CLASSIFIER_EPOCHS * math.ceil(len(x) / 256)  # batches of 256
    # Adam's usual step size
    optimizer = keras.optimizers.Adam(keras.optimizers.schedules.CosineDecay(1e-3, steps))
    classifier.compile(
        optimizer=optimizer, loss="sparse_categorical_crossentropy", jit_compile=jit_compile()
    )
    history = classifier.fit(x, data.y_train, epochs=CLASSIFIER_EPOCHS, batch_size=256, verbose=0)
    check_finite(history.history)
    scores = classifier.predict((test_features - mean) / scale, batch_size=2000, verbose=0)
    return float(100 * np.mean(scores.argmax(axis=1) != data.y_test))


encoders = {
    "topk": encoder_of(topk_model),
    "l1": encoder_of(l1_model),
    "unconstrained": keras.models.load_model(unconstrained_path),
}
try:
    (basic_path,) = chapter_files("01_basic_autoencoder", CHAPTER_01_DIR, "model.keras")
    encoders["chapter_01_code"] = encoder_of(keras.models.load_model(basic_path))
except MissingChapterError as missing:
    print(f"chapter 01's code is left out: {missing}")

print(f"\n== Linear classifiers on {len(x_train):,} labelled training images ==")
classifier_error = {}
for name, encoder in encoders.items():
    train_codes = codes_of(encoder, x_train)
    classifier_error[name] = stages.run(
        f"classifier_{name}", linear_classifier_error, train_codes, codes_of(encoder, x_test)
    )
pixels = x_train.reshape(len(x_train), -1)
classifier_error["pixels"] = stages.run(
    "classifier_pixels", linear_classifier_error, pixels, x_test.reshape(len(x_test), -1)
)
labels = {
    "topk": f"top-k, k = {trained_as['K']}",
    "l1": f"L1 penalty {trained_as['L1_WEIGHT']:g}",
    "unconstrained": "no constraint",
    "chapter_01_code": "chapter 01's code, 32 numbers",
    "pixels": "raw pixels",
}
print(f"\nLinear classifier, test error (%) on {len(x_test):,} test images:")
for name, error in classifier_error.items():
    print(f"  {labels[name]:<40}{error:>7.2f}")
print(f"  {'Makhzani & Frey (2013): k-sparse, k = 25':<40}{PUBLISHED['k_sparse_k25']:>7.2f}")
print(f"  {'Makhzani & Frey (2013): raw pixels':<40}{PUBLISHED['raw_pixels']:>7.2f}")

# %%
"""
## Visualize and save

The frontier: the test error against the units an image uses, for each family, beside PCA's
curve.
"""
components = np.unique(np.geomspace(2, 300, 12).round().astype(int))  # log-spaced
plotting.xy_curves(
    out / "frontier.png",
    {
        "top-k": (
            [p["mean_active_units"] for p in frontier["topk"]],
            [p["test_mse"] for p in frontier["topk"]],
        ),
        "L1 penalty": (
            [p["mean_active_units"] for p in frontier["l1"]],
            [p["test_mse"] for p in frontier["l1"]],
        ),
        "PCA, as many components": (components, [pca_test_mse(c) for c in components]),
    },
    xlabel="units (components) used by an image",
    ylabel="test mean squared error",
    title=f"Sparsity against error, test images (every model {epochs} epochs)",
    logx=True,
    logy=True,
)

metrics = {
    "settings": settings,
    "chapter_settings": trained_as,
    "keras": describe(),
    "data": data.source,
    "n_train": len(x_train),
    "n_test": len(x_test),
    "frontier": frontier,
    "l1_error_over_topk_frontier": l1_over_topk,
    "classifier_test_error_pct": classifier_error,
    "published_classifier_test_error_pct": PUBLISHED,
    "seconds": round(time.perf_counter() - started, 1),
}
save_json(out / "metrics.json", metrics)
stages.finished()
headline = f"L1 errs {l1_over_topk:.2f} x the top-k frontier; linear classifier on top-k codes"
finish(out, f"{headline} {classifier_error['topk']:.2f} % (published 1.35 %)", started)
