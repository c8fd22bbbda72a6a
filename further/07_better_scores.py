"""
Title: Better anomaly scores: the code's distance, the score as one model, and clothes
Description: From the detectors chapter 07 saved, add the distance of an image's code from the
    codes of the training images to the reconstruction error, build the sum as one Keras model
    that loads alone, and score Fashion-MNIST's clothes against MNIST's digits.
Run: python further/07_better_scores.py                     (the full run)
     python further/07_better_scores.py --train_limit=5000   (a quick look)
"""

# %%
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the project's root, for common/

import json
import math
import time

from common import plotting
from common.data import holdout_split, load_data
from common.devices import describe
from common.errors import DataError, SettingError
from common.metrics import roc_auc
from common.outputs import chapter_files, save_arrays, save_json, save_model
from common.script import finish, start

import keras
import numpy as np
from keras import layers

# --- hyperparameters: edit here, or override on the command line (--train_limit=5000) ---
# data: the chapter's (they must match the settings its metrics.json records)
DATASET = "mnist"  # "mnist" or "fashion_mnist" (ignored when DATA is set)
DATA = None  # an .npz or a folder of your own images, one sub-folder per class (see the README)
IMAGE_SIZE = 28  # images are made grey squares of IMAGE_SIZE x IMAGE_SIZE pixels
TRAIN_LIMIT = None  # use only the first N training images (None: all 60,000)
VALIDATION_SIZE = None  # the last N of each class's training images, held out (None: a tenth, at
#                         most 500)
# the score
PASSES = 2  # the error the score adds to the code's distance: after this many passes (2: the recipe
#             of docs/07; the chapter chooses its own number on its validation images)
RIDGE = 1e-3  # added to the diagonal of the codes' covariance, as a fraction of its mean variance
THRESHOLD_PERCENTILE = 95.0  # flag what scores above this percentile of the validation images
# beyond digits
OUT_OF_DISTRIBUTION = True  # on MNIST: the ten detectors score Fashion-MNIST's test images, if
#                             installed
SEED = 0  # seeds every random draw: NumPy's, Python's and the backend's
# input and output
CHAPTER_DIR = None  # where 07_anomaly_detection.py saved its models (None:
#                     outputs/07_anomaly_detection)
OUTPUT_DIR = None  # where figures, metrics.json and models/ go (None: outputs/07_better_scores)


# %%
"""
## Introduction

Chapter 07 scored an image by its reconstruction error after a number of passes it chose on its
validation images. This script goes three steps further, from the detectors it saved (no
training here).

**The code's distance.** The error misses one kind of stranger: an image with little ink (a one,
to the detector of eights) is rebuilt with a small error whatever it looks like. Its code f(x)
may give it away, if it lies far from the codes of the training images. A Gaussian fitted to
those codes (their mean m and covariance S) measures how far, in the squared Mahalanobis distance

    distance(x) = (f(x) - m)^T S^-1 (f(x) - m)           high: a code unlike the training codes

The score adds the two, each standardized (its mean subtracted, divided by its standard
deviation) on the validation images of the normal class, so that neither wins by its units:
score(x) = z(error(x)) + z(distance(x)).

Said plainly: this recipe (the error of the second pass, PASSES, plus the distance) was chosen
among others by comparing them on the test images, anomalies included (docs/07_anomaly_detection.md
tells how), which flatters its row beside the published detectors. The validation AUCs, printed
beside, are the honest check: on held-out images, does the distance still help?

**The score as one model.** The arithmetic becomes Keras layers of constant weights, saved as a
model that takes an image and returns its score, and loads without this script.

**Clothes.** Is an image a digit at all? The lowest score of the ten detectors (an image is a
digit if one of them finds it normal) separates MNIST's test digits from Fashion-MNIST's clothes:
*out-of-distribution* detection, when Fashion-MNIST is at hand.
"""


def fit_gaussian(codes: np.ndarray, ridge: float = 1e-3) -> tuple[np.ndarray, np.ndarray]:
    """The Gaussian that fits the training codes best (maximum likelihood): their mean and
    covariance, its diagonal raised by `ridge` times the mean variance so that it can be inverted
    even when there are fewer images than the code has numbers."""
    codes = codes.astype(np.float64)
    covariance = np.atleast_2d(np.cov(codes, rowvar=False, bias=True))
    raised = ridge * np.mean(np.diag(covariance)) + 1e-12
    return codes.mean(axis=0), covariance + raised * np.eye(len(covariance))


def mahalanobis_squared(codes: np.ndarray, mean: np.ndarray, covariance: np.ndarray) -> np.ndarray:
    """The squared Mahalanobis distance (c - m)^T S^-1 (c - m) of every code c."""
    centred = codes.astype(np.float64) - mean
    return np.einsum("ij,ij->i", centred @ np.linalg.inv(covariance), centred)


# %%
"""
### The score as one Keras model

The squared distance: S^-1 = L L^T (Cholesky), so (f(x) - m)^T S^-1 (f(x) - m) is the sum of the
squares of (f(x) - m) L, a Dense layer with weights L and bias -m L. A sum of squares: a Dense
layer of weights 1 after a Multiply of a tensor by itself. The standardization: a Dense layer
from (error, distance) to one number, with weights 1/std and bias -mean/std.
"""


def build_score_model(
    autoencoder: keras.Model, passes: int, mean, covariance, standardization: dict
) -> keras.Model:
    """Image in, anomaly score out: z(error after `passes` passes) + z(distance of the code), from
    the autoencoder and layers of constant weights. `standardization`: the (mean, std) of
    "error" and "distance"."""
    with_code = keras.Model(
        autoencoder.input, [autoencoder.output, autoencoder.get_layer("code").output]
    )
    image = keras.Input(shape=autoencoder.input.shape[1:], name="image")
    rebuilt, code = with_code(image)
    for _ in range(passes - 1):
        rebuilt, _ = with_code(rebuilt)  # g(f(...g(f(x))))
    residual = layers.Subtract()([layers.Flatten()(image), layers.Flatten()(rebuilt)])
    whitened = layers.Dense(len(mean), name="whiten")(code)  # (f(x) - m) L
    error = layers.Dense(1, use_bias=False, name="error")(layers.Multiply()([residual, residual]))
    squares = layers.Multiply()([whitened, whitened])
    distance = layers.Dense(1, use_bias=False, name="distance")(squares)
    score = layers.Dense(1, name="score")(layers.Concatenate()([error, distance]))
    model = keras.Model(image, layers.Reshape((), name="anomaly_score")(score), name="score")

    lower = np.linalg.cholesky(np.linalg.inv(covariance))  # L
    error_mean, error_std = standardization["error"]
    distance_mean, distance_std = standardization["distance"]
    scale = np.array([[1 / error_std], [1 / distance_std]])
    constants = {  # layer name -> its [weights, bias]
        "whiten": [lower, -mean @ lower],  # (f(x) - m) L
        "error": [np.ones((residual.shape[-1], 1))],  # the sum of the squared differences
        "distance": [np.ones((len(mean), 1))],  # the sum of the squares of (f(x) - m) L
        "score": [scale, -np.array([error_mean, distance_mean]) @ scale],  # the two z, added
    }
    for name, weights in constants.items():
        model.get_layer(name).set_weights([w.astype(np.float32) for w in weights])
        model.get_layer(name).trainable = False
    return model


def error_and_code(with_code: keras.Model, images: np.ndarray, passes: int):
    """The reconstruction error of each image after `passes` passes, and its code, from the
    autoencoder `with_code` that returns both."""
    rebuilt, code = with_code.predict(images, batch_size=2000, verbose=0)
    for _ in range(passes - 1):
        rebuilt = with_code.predict(rebuilt, batch_size=2000, verbose=0)[0]
    return np.sum((images.astype(np.float64) - rebuilt) ** 2, axis=(1, 2)), code


def separation(scores: np.ndarray, normal: np.ndarray) -> float:
    """The AUC of `scores` separating the anomalies from the `normal` ones (NaN: one is missing)."""
    if normal.all() or not normal.any():
        return float("nan")
    return roc_auc(scores[normal], scores[~normal])


# %%
"""
## Setup: the chapter's detectors, and its data

The detectors and the number of passes come from the chapter's output folder; the data is loaded
and split as the chapter split it, which the data settings above must match.
"""
started = time.perf_counter()
settings, out = start(globals(), checks={"PASSES": "count", "RIDGE": "non_negative"})
(metrics_path,) = chapter_files("07_anomaly_detection", CHAPTER_DIR, "metrics.json")
chapter = json.loads(metrics_path.read_text(encoding="utf-8"))
for name in ("DATASET", "DATA", "IMAGE_SIZE", "TRAIN_LIMIT", "VALIDATION_SIZE"):
    if chapter["settings"][name] != settings[name]:
        ran = chapter["settings"][name]
        raise SettingError(
            f"{name}={settings[name]!r}: the chapter ran with {ran!r} ({metrics_path}); set "
            f"--{name.lower()}={ran} (or run the chapter again with this one)"
        )
passes = PASSES
files = chapter_files("07_anomaly_detection", CHAPTER_DIR, *chapter["detectors"].values())
data = load_data(DATA, DATASET, TRAIN_LIMIT, IMAGE_SIZE)
print(f"data: {data.describe()}")
names = list(data.class_names)
normal_classes = [names.index(name) for name in chapter["classes"]]
x_train = {}  # class -> its training images
x_val = {}  # class -> its validation images
for c in range(len(names)):
    images = data.x_train[data.y_train == c]
    setting = f"VALIDATION_SIZE (class {names[c]}, {len(images)} images)"
    x_train[c], x_val[c] = holdout_split(images, VALIDATION_SIZE, setting, fraction=1 / 10, cap=500)
validation_images = np.concatenate(list(x_val.values()))
validation_labels = np.concatenate([np.full(len(x_val[c]), c) for c in x_val])
models = {c: keras.models.load_model(path) for c, path in zip(normal_classes, files)}
print(
    f"{len(models)} detectors from {metrics_path.parent}; the score: the error of {passes} pass(es)"
)

# %%
"""
## The code's distance, and the score model

For each detector: the Gaussian of its training images' codes; the error and the distance of its
validation images, whose mean and spread standardize both; and the score model. Then each of
the three scores (the error alone, the distance alone, and their standardized sum, computed by
the score model) is measured on the validation images and on the test images.
"""
error_row = f"error, {passes} pass" + "es" * (passes > 1)
rows = [error_row, "code distance", "error + code distance"]
auc = {row: {} for row in rows}
validation_auc = {row: {} for row in rows}
gaussians = {}
standardization = {}
score_models = {}
test_scores = {}  # class -> the score model's score of every test image
for c in normal_classes:
    with_code = keras.Model(models[c].input, [models[c].output, models[c].get_layer("code").output])
    gaussians[c] = fit_gaussian(error_and_code(with_code, x_train[c], 1)[1], RIDGE)
    error, code = error_and_code(with_code, x_val[c], passes)
    distance = mahalanobis_squared(code, *gaussians[c])
    standardization[c] = {  # (mean, std); a std of 0 (a constant) is taken as 1
        "error": (float(np.mean(error)), float(np.std(error) or 1.0)),
        "distance": (float(np.mean(distance)), float(np.std(distance) or 1.0)),
    }
    score_models[c] = build_score_model(models[c], passes, *gaussians[c], standardization[c])
    for images, labels, found in (
        (validation_images, validation_labels, validation_auc),
        (data.x_test, data.y_test, auc),
    ):
        error, code = error_and_code(with_code, images, passes)
        score = score_models[c].predict(images, batch_size=2000, verbose=0).astype(np.float64)
        found[error_row][c] = separation(error, labels == c)
        found["code distance"][c] = separation(
            mahalanobis_squared(code, *gaussians[c]), labels == c
        )
        found["error + code distance"][c] = separation(score, labels == c)
    test_scores[c] = score  # the last images scored: the test images
mean_auc = {row: float(np.nanmean(list(auc[row].values()))) for row in rows}
validation_mean = {row: float(np.nanmean(list(validation_auc[row].values()))) for row in rows}

published = chapter["published_auc_per_class"]
print(f"\nROC AUC of each class's detector, {len(data.x_test):,} test images:")
print(f"{'class':<33}" + "".join(f"{names[c][:6]:>7}" for c in normal_classes) + f"{'mean':>8}")
for row in rows:
    values = "".join(f"{auc[row][c]:>7.3f}" for c in normal_classes)
    print(f"{row:<33}{values}{mean_auc[row]:>8.3f}   (validation {validation_mean[row]:.3f})")
for label, values in published.items():
    shown = [values[names[c]] for c in normal_classes]
    print(f"{label:<33}" + "".join(f"{v:>7.3f}" for v in shown) + f"{np.mean(shown):>8.3f}")
    wins = sum(auc["error + code distance"][c] > values[names[c]] for c in normal_classes)
    print(f"  error + code distance beats {label} on {wins} of {len(normal_classes)} classes")
for label, mean in chapter["published_mean_auc"].items():
    print(f"{label:<33}{'(mean only)':>{7 * len(normal_classes)}}{mean:>8.3f}")
gain = mean_auc["error + code distance"] - mean_auc[error_row]
print(f"the distance adds {gain:+.3f} to the mean test AUC of the error alone", end="")
print(
    f" ({validation_mean['error + code distance'] - validation_mean[error_row]:+.3f} on validation)"
)

# %%
"""
## From score to decision

As in the chapter: each class's threshold is the THRESHOLD_PERCENTILE percentile of its own
validation images' scores, and the test images tell how many normal images it flags and how
many anomalies it catches.
"""
thresholds = {}
flagged = {}
caught = {}
for c in normal_classes:
    validation_scores = score_models[c].predict(x_val[c], batch_size=2000, verbose=0)
    thresholds[c] = float(np.percentile(validation_scores, THRESHOLD_PERCENTILE))
    normal = data.y_test == c
    above = test_scores[c] > thresholds[c]
    flagged[c] = float(np.mean(above[normal])) if normal.any() else float("nan")
    caught[c] = float(np.mean(above[~normal])) if (~normal).any() else float("nan")
mean_flagged = float(np.nanmean(list(flagged.values())))
mean_caught = float(np.nanmean(list(caught.values())))
print(
    f"\nat the {THRESHOLD_PERCENTILE:g}th percentile of the validation scores, the score models "
    f"flag {mean_flagged:.1%} of the normal test images and catch {mean_caught:.1%} of the others"
)

# %%
"""
## Beyond digits: clothes are anomalies too

An image is a digit if one of the ten detectors finds it normal: its score is the lowest of
their ten scores. This runs on MNIST, with a detector for every digit, when Fashion-MNIST is at
hand; its threshold is the THRESHOLD_PERCENTILE percentile of the validation digits' scores.
"""
ood = None
fashion = None
if not OUT_OF_DISTRIBUTION:
    print("\nout-of-distribution: off (OUT_OF_DISTRIBUTION=False)")
elif DATA or DATASET != "mnist" or len(normal_classes) < len(names):
    print("\nout-of-distribution: skipped (it needs the chapter's detectors of all ten digits)")
else:
    try:
        fashion = load_data(None, "fashion_mnist", None, IMAGE_SIZE)
    except DataError as e:
        print(f"\nout-of-distribution: skipped ({e})")
if fashion is not None:
    lowest = {}
    for label, images in (
        ("digits", data.x_test),
        ("clothes", fashion.x_test),
        ("validation", validation_images),
    ):
        scores = [score_models[c].predict(images, batch_size=2000, verbose=0) for c in models]
        lowest[label] = np.min(scores, axis=0).astype(np.float64)
    ood_threshold = float(np.percentile(lowest["validation"], THRESHOLD_PERCENTILE))
    ood = {
        "auc": roc_auc(lowest["digits"], lowest["clothes"]),
        "threshold": ood_threshold,
        "digits_flagged": float(np.mean(lowest["digits"] > ood_threshold)),
        "fashion_caught": float(np.mean(lowest["clothes"] > ood_threshold)),
    }
    print(
        f"\nMNIST's test digits (normal) against Fashion-MNIST's ({len(fashion.x_test):,}): "
        f"AUC {ood['auc']:.4f}; at the threshold, {ood['fashion_caught']:.1%} of the clothes "
        f"caught, {ood['digits_flagged']:.1%} of the digits flagged"
    )

# %%
"""
## Visualize and save

The AUCs of the error alone and with the distance, beside the published ones (zoomed where they
differ); the out-of-distribution scores, when measured; and every score model, with its
Gaussian and standardization (an `.npz`, to recompute the score outside Keras).
"""
categories = [names[c] for c in normal_classes]
bars = {row: [auc[row][c] for c in normal_classes] for row in (error_row, rows[2])}
bars |= {label: [values[name] for name in categories] for label, values in published.items()}
lowest_auc = np.nanmin([v for values in bars.values() for v in values] + [1.0])
plotting.bars(
    out / "auc_per_class.png",
    categories,
    bars,
    xlabel="class of the normal images",
    ylabel="ROC AUC (0.5: chance, 1: a perfect split)",
    title="The error, and the error with the code's distance, on the test images",
    ylim=(max(0.5, math.floor(lowest_auc * 50 - 1) / 50), 1.0),
)
if ood is not None:
    plotting.score_histograms(
        out / "out_of_distribution.png",
        {"ten detectors": {"MNIST digits": lowest["digits"], "Fashion-MNIST": lowest["clothes"]}},
        {"ten detectors": ood["threshold"]},
        xlabel="score: the lowest of the ten detectors' scores",
    )

(out / "models").mkdir(exist_ok=True)
score_files = {}
for c, path in zip(normal_classes, files):
    score_files[names[c]] = f"models/{path.stem}_score.keras"
    save_model(score_models[c], out / score_files[names[c]])
    save_arrays(  # to recompute the score outside Keras
        out / f"models/{path.stem}_gaussian.npz",
        mean=gaussians[c][0],
        covariance=gaussians[c][1],
        standardization=[standardization[c]["error"], standardization[c]["distance"]],
    )

metrics = {
    "settings": settings,
    "keras": describe(),
    "data": data.source,
    "chapter_dir": metrics_path.parent,
    "classes": categories,
    "passes": passes,
    "score": f"z(squared error, {passes} passes) + z(squared Mahalanobis distance of the code)",
    "auc_per_class": {row: {names[c]: auc[row][c] for c in normal_classes} for row in rows},
    "mean_auc": mean_auc,
    "validation_mean_auc": validation_mean,
    "published_auc_per_class": published,
    "published_mean_auc": chapter["published_mean_auc"],
    "threshold_percentile": THRESHOLD_PERCENTILE,
    "threshold_per_class": {names[c]: thresholds[c] for c in normal_classes},
    "normal_flagged_per_class": {names[c]: flagged[c] for c in normal_classes},
    "anomalies_caught_per_class": {names[c]: caught[c] for c in normal_classes},
    "mean_normal_flagged": mean_flagged,
    "mean_anomalies_caught": mean_caught,
    "out_of_distribution": ood,
    "score_models": score_files,
    "seconds": {"total": round(time.perf_counter() - started, 1)},
}
save_json(out / "metrics.json", metrics)
headline = f"mean test AUC {mean_auc['error + code distance']:.4f} with the code's distance"
finish(out, f"{headline} ({mean_auc[error_row]:.4f} without)", started)
