"""
Title: Anomaly detection: the reconstruction error as a detector of the unusual
Description: Train one autoencoder per digit on that digit alone, and find the other digits by how
    badly it rebuilds them; scored by ROC AUC on the standard one-class benchmark, beside the
    published detectors, and turned into a decision by a threshold.
Run: python 07_anomaly_detection.py                                   (the full run)
     python 07_anomaly_detection.py --train_limit=5000 --classes="(0,8)" --epochs=60 \
         --batch_size=32                                              (a quick look)
"""

# %%
import math
import re
import time

from common import plotting
from common.data import check_classes, holdout_split, load_data
from common.devices import describe, jit_compile
from common.errors import SettingError
from common.metrics import roc_auc, roc_curve
from common.outputs import save_json, save_model
from common.pca import pca, pca_reconstruct
from common.script import finish, start
from common.stages import Stages
from common.training import backup_folder, train_autoencoder

import keras
import numpy as np
from keras import layers

# --- hyperparameters: edit here, or override on the command line (--epochs=5) ---
# data
DATASET = "mnist"  # "mnist" or "fashion_mnist" (ignored when DATA is set)
DATA = None  # an .npz or a folder of your own images, one sub-folder per class (see the README)
IMAGE_SIZE = 28  # images are made grey squares of IMAGE_SIZE x IMAGE_SIZE pixels
TRAIN_LIMIT = None  # use only the first N training images (None: all 60,000)
CLASSES = None  # class numbers to build a detector for, e.g. (0, 8) (None: every class)
VALIDATION_SIZE = None  # the last N of each class's training images, held out (None: a tenth, at
#                         most 500)
# model
CODE_DIM = 32  # size of the code between encoder and decoder
FILTERS = (32, 64)  # the detector's encoder: 3x3 convolutions of stride 2, one per entry; the
#                     decoder mirrors them
# training (the same for every detector)
EPOCHS = 25  # passes over one class's training images
BATCH_SIZE = 256  # images per gradient step
LEARNING_RATE = 3e-3  # Adam's step size, decayed to zero over training (cosine)
SEED = 0  # seeds every random draw: NumPy's, Python's and the backend's
# the score, and from score to decision
MAX_PASSES = 3  # the errors after 1 to MAX_PASSES passes are compared on the validation images
THRESHOLD_PERCENTILE = 95.0  # flag what scores above this percentile of the validation images
# output
PICTURED_CLASSES = None  # classes whose test images are drawn (None: the easiest and the hardest)
OUTPUT_DIR = None  # where figures, metrics.json and models/ go (None: outputs/07_anomaly_detection)

PUBLISHED = {  # ROC AUC on MNIST under the same protocol, digits 0 to 9
    # Ruff et al., "Deep One-Class Classification" (ICML 2018), Table 1: mean of 10 seeds
    "Deep SVDD": (0.980, 0.997, 0.917, 0.919, 0.949, 0.885, 0.983, 0.946, 0.939, 0.965),
    # Perera et al., "OCGAN" (CVPR 2019), its MNIST table
    "OCGAN": (0.998, 0.999, 0.942, 0.963, 0.975, 0.980, 0.991, 0.981, 0.939, 0.981),
}
# published as a mean over the ten digits only: Golan & El-Yaniv, "Deep Anomaly Detection Using
# Geometric Transformations" (NeurIPS 2018)
PUBLISHED_MEAN = {"GEOM": 0.980}


# %%
"""
## Introduction

Chapter 01 measured how well an autoencoder rebuilds the images it was trained on. Here the
failures are the point. An autoencoder trained only on zeros learns what zeros look like; shown
a seven, it rebuilds something between a seven and a zero: the reconstruction error, sum over
pixels of (x - g(f(x)))^2 (f the encoder, g the decoder), is an *anomaly score*, learned without
a single anomalous example.

The standard benchmark (Ruff et al., ICML 2018, and most papers since) makes ten problems of
MNIST: for each digit d, train on the training images of d only, score all 10,000 test images,
and measure how well the score separates the test images of d ("normal") from the 9,000 or so
others ("anomalous") by the area under the ROC curve (AUC): the probability that a random anomaly
scores higher than a random normal image (0.5: a coin toss; 1: a perfect split). PCA's error is
the linear baseline, as in chapter 01; Deep SVDD (a small ball of normal codes), OCGAN (an
adversarial autoencoder) and GEOM (a classifier of geometric transformations) the yardsticks.
"""


def build_detector(code_dim: int, filters: tuple[int, ...], size: int) -> keras.Model:
    """A convolutional autoencoder of size x size images: image in, reconstruction out, its code
    the layer named "code". Each entry of `filters` is a 3x3 convolution of stride 2 (28 -> 14 ->
    7 pixels for two), the code a dense linear layer, and the decoder their mirror image."""
    image = keras.Input(shape=(size, size), name="image")
    h = layers.Reshape((size, size, 1))(image)
    for n in filters:
        h = layers.Conv2D(n, 3, strides=2, padding="same", activation="relu")(h)  # halves the side
    side = size // 2 ** len(filters)
    h = layers.Flatten()(h)
    code = layers.Dense(code_dim, name="code")(h)  # linear code
    h = layers.Dense(side * side * filters[-1], activation="relu")(code)
    h = layers.Reshape((side, side, filters[-1]))(h)
    for n in reversed(filters[:-1]):
        h = layers.Conv2DTranspose(n, 3, strides=2, padding="same", activation="relu")(h)  # doubles
    h = layers.Conv2DTranspose(1, 3, strides=2, padding="same", activation="sigmoid")(h)  # [0, 1]
    reconstruction = layers.Reshape((size, size), name="reconstruction")(h)
    return keras.Model(image, reconstruction, name="autoencoder")


# %%
"""
## Setup

Apply the command line's overrides to the constants above (`--help` lists them), create and
check the output folder, and seed every random generator with SEED. Each detector is trained as a
*stage* (`stages.run`), seeded from SEED and its name and kept in the output folder: after Ctrl-C,
the same command loads the detectors already trained and resumes the one in progress.
"""
started = time.perf_counter()
settings, out = start(globals(), checks={"MAX_PASSES": "count"})
if not FILTERS or IMAGE_SIZE % 2 ** len(FILTERS):
    raise SettingError(f"FILTERS={FILTERS}: each halves IMAGE_SIZE, which must stay whole")
stages = Stages(backup_folder(out, settings, "stages"), SEED)  # Ctrl-C, then rerun: resumes here

# %%
"""
## Prepare the data

The images of one class are the normal ones, those of every other class the anomalies (a folder
of your own images needs one sub-folder per class). From each class's training images, the last
VALIDATION_SIZE (by default a tenth, at most 500, of about 6,000) are held out: no detector trains
on them; they choose the number of passes and set the threshold. The test images are only scored.
"""
data = load_data(DATA, DATASET, TRAIN_LIMIT, IMAGE_SIZE)
print(f"data: {data.describe()}")
names = data.class_names
normal_classes = check_classes(data, CLASSES, DATA or data.source)  # each in turn the normal one
every_class = list(range(len(names)))
x_train = {}  # class -> its training images
x_val = {}  # class -> its validation images
for c in every_class:  # every class, not only CLASSES: its images are the others' anomalies
    images = data.x_train[data.y_train == c]
    setting = f"VALIDATION_SIZE (class {names[c]}, {len(images)} images)"
    x_train[c], x_val[c] = holdout_split(images, VALIDATION_SIZE, setting, fraction=1 / 10, cap=500)
validation_images = np.concatenate([x_val[c] for c in every_class])
validation_labels = np.concatenate([np.full(len(x_val[c]), c) for c in every_class])
print(f"{len(normal_classes)} detectors; {len(validation_images):,} validation images, all classes")
on_mnist = DATA is None and DATASET == "mnist"

# %%
"""
## Train: one detector per class

Every autoencoder is trained from scratch on one class's images with Adam, its step size decayed
to zero (cosine), and squared error (the measure the score uses), to reconstruct once; further
passes are only used to score. PCA, with as many components as the code, fits the same images.
"""


def train_detector(images: np.ndarray, epochs: int, resume_dir):
    """A new autoencoder trained to rebuild `images`. Returns its weights, loss history and
    training time."""
    model = build_detector(CODE_DIM, tuple(FILTERS), IMAGE_SIZE)
    steps = epochs * math.ceil(len(images) / BATCH_SIZE)
    schedule = keras.optimizers.schedules.CosineDecay(LEARNING_RATE, decay_steps=steps)
    optimizer = keras.optimizers.Adam(schedule)
    # without XLA under TensorFlow: compiling these small networks costs more than it saves
    model.compile(optimizer=optimizer, loss="mse", jit_compile=jit_compile(on_tensorflow=False))
    history, seconds = train_autoencoder(
        model, images, images, epochs=epochs, batch_size=BATCH_SIZE, resume_dir=resume_dir
    )
    return model.get_weights(), history, seconds


models = {}
histories = {}
pcas = {}
train_seconds = 0.0
for c in normal_classes:
    print(f"\n-- autoencoder for class {names[c]} ({len(x_train[c]):,} images)")
    resume = stages.subfolder(f"class_{c}")
    weights, histories[c], seconds = stages.run(
        f"class_{c}", train_detector, x_train[c], EPOCHS, resume
    )
    models[c] = build_detector(CODE_DIM, tuple(FILTERS), IMAGE_SIZE)
    models[c].set_weights(weights)
    train_seconds += seconds
    pcas[c] = pca(x_train[c], CODE_DIM)

# %%
"""
## The score: how many passes, chosen on the validation images

Rebuild the reconstruction once more and a seven is pulled further toward a zero, while a zero
barely moves: the error of a second pass, sum of (x - g(f(g(f(x)))))^2, may separate better, and
a third better still, or worse. Chosen on the test images, the number of passes would flatter the
figure it reports; it is chosen on the validation images: for each detector, those of its class
are the normal ones, the others the anomalies. The number of passes (1 to MAX_PASSES) of best
mean AUC is the score, and the test images measure it once.
"""


def errors_by_passes(model: keras.Model, images: np.ndarray, passes: int) -> list[np.ndarray]:
    """The reconstruction error of each image after 1, 2, ... `passes` passes through the model:
    its squared differences from the image, summed over the pixels."""
    errors = []
    rebuilt = images
    for _ in range(passes):
        rebuilt = model.predict(rebuilt, batch_size=2000, verbose=0)
        errors.append(np.sum((images.astype(np.float64) - rebuilt) ** 2, axis=(1, 2)))
    return errors


def separation(scores: np.ndarray, normal: np.ndarray) -> float:
    """The AUC of `scores` separating the anomalies from the `normal` ones (NaN: one is missing)."""
    if normal.all() or not normal.any():
        return float("nan")
    return roc_auc(scores[normal], scores[~normal])


pass_name = {p: f"autoencoder, {p} pass" + "es" * (p > 1) for p in range(1, MAX_PASSES + 1)}
validation_auc = {p: {} for p in pass_name}  # passes -> class -> AUC
for c in normal_classes:
    errors = errors_by_passes(models[c], validation_images, MAX_PASSES)
    for p, scores in enumerate(errors, start=1):
        validation_auc[p][c] = separation(scores, validation_labels == c)
validation_mean = {p: float(np.nanmean(list(v.values()))) for p, v in validation_auc.items()}
passes = max(validation_mean, key=lambda p: (validation_mean[p], -p))  # the fewest, among equals
detector = pass_name[passes]
by_passes = ", ".join(f"{validation_mean[p]:.4f} ({p})" for p in validation_mean)
print(f"\nmean validation AUC by passes: {by_passes}")
print(f"the score: {detector}")

# %%
"""
## Evaluate on the test images: every detector, PCA, and the published ones

Each detector scores every test image; its AUC separates the test images of its own class from
all the others (`roc_auc`: the Mann-Whitney U statistic over the number of pairs). The passes not
chosen are printed too. PCA, a linear autoencoder, already separates well: the lesson is the
reconstruction error as a score; the non-linear autoencoder sharpens it.
"""
variants = ["PCA"] + [pass_name[p] for p in validation_mean]
test_scores = {}  # class -> the chosen score of every test image
auc = {v: {} for v in variants}
for c in normal_classes:
    normal = data.y_test == c
    pca_errors = np.sum(
        (data.x_test.astype(np.float64) - pca_reconstruct(data.x_test, *pcas[c])) ** 2, axis=(1, 2)
    )
    auc["PCA"][c] = separation(pca_errors, normal)
    errors = errors_by_passes(models[c], data.x_test, MAX_PASSES)
    for p, scores in enumerate(errors, start=1):
        auc[pass_name[p]][c] = separation(scores, normal)
    test_scores[c] = errors[passes - 1]
mean_auc = {v: float(np.nanmean(list(auc[v].values()))) for v in variants}

published = {}
if on_mnist:
    published = {label: [values[c] for c in normal_classes] for label, values in PUBLISHED.items()}
print(f"\nROC AUC of each class's detector, {len(data.x_test):,} test images:")
print(f"{'class':<29}" + "".join(f"{names[c][:6]:>7}" for c in normal_classes) + f"{'mean':>8}")
for variant in variants:
    row = "".join(f"{auc[variant][c]:>7.3f}" for c in normal_classes)
    mark = "  <- chosen on the validation images" if variant == detector else ""
    print(f"{variant:<29}{row}{mean_auc[variant]:>8.3f}{mark}")
for label, values in published.items():
    print(f"{label:<29}" + "".join(f"{v:>7.3f}" for v in values) + f"{np.mean(values):>8.3f}")
if published:
    for label, mean in PUBLISHED_MEAN.items():
        print(f"{label:<29}{'(mean only)':>{7 * len(normal_classes)}}{mean:>8.3f}")
    for label, values in published.items():
        wins = sum(auc[detector][c] > v for c, v in zip(normal_classes, values))
        print(f"the detector beats {label} on {wins} of {len(normal_classes)} digits")
    if "sample" in data.source:
        print("(the published figures are for detectors trained on the full MNIST)")
print(f"mean AUC: the detector {mean_auc[detector]:.3f}, PCA {mean_auc['PCA']:.3f}")
print(f"training time: {train_seconds:.0f} s ({len(normal_classes)} autoencoders)")

# %%
"""
## From score to decision

An AUC ranks; a detector in service must decide. The threshold of each class is the
THRESHOLD_PERCENTILE percentile of its own validation images' scores: about (100 -
THRESHOLD_PERCENTILE) % of normal images will be flagged, and what matters is how many anomalies
are caught at that price. No anomaly, and no test image, is used to set it.
"""
thresholds = {}
flagged = {}
caught = {}
print(f"\nThreshold at the {THRESHOLD_PERCENTILE:g}th percentile of the validation scores:")
print(f"{'class':<8}{'threshold':>10}{'normal flagged':>16}{'anomalies caught':>18}")
for c in normal_classes:
    normal = data.y_test == c
    validation_scores = errors_by_passes(models[c], x_val[c], passes)[-1]
    thresholds[c] = float(np.percentile(validation_scores, THRESHOLD_PERCENTILE))
    above = test_scores[c] > thresholds[c]
    flagged[c] = float(np.mean(above[normal])) if normal.any() else float("nan")
    caught[c] = float(np.mean(above[~normal])) if (~normal).any() else float("nan")
    print(f"{names[c][:8]:<8}{thresholds[c]:>10.2f}{flagged[c]:>16.1%}{caught[c]:>18.1%}")
mean_flagged = float(np.nanmean(list(flagged.values())))
mean_caught = float(np.nanmean(list(caught.values())))
print(f"{'mean':<8}{'':>10}{mean_flagged:>16.1%}{mean_caught:>18.1%}")

# %%
"""
## Visualize and save

The AUCs beside the published ones (zoomed where they differ); the ROC curves; for the easiest
and the hardest class (PICTURED_CLASSES), the test images found most normal and strangest, the
strangest of the class, the anomalies found most normal (the misses), and the score histograms
with the threshold. The autoencoders are saved for `further/07_better_scores.py`.
"""
categories = [names[c] for c in normal_classes]
shown = ["PCA", pass_name[1], detector] if passes > 1 else ["PCA", detector]
bars = {v: [auc[v][c] for c in normal_classes] for v in shown} | published
lowest = np.nanmin([v for values in bars.values() for v in values] + [1.0])
plotting.bars(
    out / "auc_per_class.png",
    categories,
    bars,
    xlabel="digit of the normal images" if on_mnist else "class of the normal images",
    ylabel="ROC AUC (0.5: chance, 1: a perfect split)",
    title="One detector per class, on the test images",
    ylim=(max(0.5, math.floor(lowest * 50 - 1) / 50), 1.0),
)
curves = {}
for c in normal_classes:
    normal = data.y_test == c
    if np.isfinite(auc[detector][c]):  # test images of the class, and of others
        fpr, tpr, _ = roc_curve(test_scores[c][normal], test_scores[c][~normal])
        curves[f"{names[c]} (AUC {auc[detector][c]:.3f})"] = (fpr, tpr)
plotting.roc_curves(
    out / "roc_curves.png", curves, title="ROC curves of the detectors, test images"
)

ranked = [c for c in normal_classes if np.isfinite(auc[detector][c])]
ranked.sort(key=lambda c: -auc[detector][c])  # from the easiest class to the hardest
pictured = [c for c in np.atleast_1d(PICTURED_CLASSES) if c in ranked] if PICTURED_CLASSES else []
if not pictured and ranked:
    pictured = sorted({ranked[0], ranked[-1]}, key=ranked.index)  # the easiest and the hardest
rows = {}
panels = {}
for c in pictured:
    scores = test_scores[c]
    normal = data.y_test == c
    order = np.argsort(scores)  # from the most normal to the strangest
    own = order[normal[order]]
    others = order[~normal[order]]
    rows[f"{names[c]}: most normal"] = data.x_test[order[:10]]
    rows[f"{names[c]}: strangest"] = data.x_test[order[::-1][:10]]
    rows[f"strangest {names[c]}s"] = data.x_test[own[::-1][:10]]
    rows[f"others most like {names[c]}"] = data.x_test[others[:10]]
    panels[f"detector of {names[c]}"] = {"normal": scores[normal], "anomalous": scores[~normal]}
plotting.image_rows(
    out / "strangest.png", rows, n=10, title="Test images by their score (the pictured detectors)"
)
plotting.score_histograms(
    out / "score_histograms.png",
    panels,
    {f"detector of {names[c]}": thresholds[c] for c in pictured},
    xlabel=f"score: squared error ({detector})",
)

(out / "models").mkdir(exist_ok=True)
detector_files = {}
for c in normal_classes:
    detector_files[names[c]] = f"models/class_{re.sub(r'[^A-Za-z0-9_.-]+', '_', names[c])}.keras"
    save_model(models[c], out / detector_files[names[c]])

metrics = {
    "settings": settings,
    "keras": describe(),
    "data": data.source,
    "classes": categories,
    "n_train_per_class": {names[c]: len(x_train[c]) for c in normal_classes},
    "n_validation_per_class": {names[c]: len(x_val[c]) for c in normal_classes},
    "n_test": len(data.x_test),
    "validation_mean_auc_by_passes": validation_mean,
    "passes": passes,
    "detector": detector,
    "auc_per_class": {v: {names[c]: auc[v][c] for c in normal_classes} for v in variants},
    "mean_auc": mean_auc,
    "published_auc_per_class": {
        label: dict(zip(categories, values)) for label, values in published.items()
    },
    "published_mean_auc": PUBLISHED_MEAN if published else {},
    "threshold_percentile": THRESHOLD_PERCENTILE,
    "threshold_per_class": {names[c]: thresholds[c] for c in normal_classes},
    "normal_flagged_per_class": {names[c]: flagged[c] for c in normal_classes},
    "anomalies_caught_per_class": {names[c]: caught[c] for c in normal_classes},
    "detectors": detector_files,
    "loss_history": {names[c]: histories[c]["loss"] for c in normal_classes},
    "seconds": {
        "training": round(train_seconds, 1),
        "total": round(time.perf_counter() - started, 1),
    },
}
save_json(out / "metrics.json", metrics)
stages.finished()
headline = f"mean test AUC {mean_auc[detector]:.4f} ({detector}; PCA {mean_auc['PCA']:.4f})"
finish(out, headline, started)
