"""
Title: Anomaly detection: the reconstruction error as a detector of the unusual
Description: Train one autoencoder per digit on that digit alone, and find the other digits (and
    clothes) by how badly it rebuilds them; scored by ROC AUC on the standard one-class benchmark.
Run: python 07_anomaly_detection.py            (add --classes="(0,8)" --epochs=3 for a quick look)
"""

# %%
import re
import time

from common import plotting
from common.corruption import Corruption
from common.data import load_data
from common.errors import DataError, SettingError
from common.metrics import roc_auc, roc_curve
from common.outputs import save_json, save_model
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
HELD_OUT = 0.1  # fraction of each class's training images kept aside to set the threshold
HELD_OUT_MAX = 500  # ... but at most this many per class
# model
CODE_DIM = 32  # size of the code between encoder and decoder
HIDDEN_UNITS = (256,)  # encoder layer widths; the decoder mirrors them
# training (the same for every detector)
EPOCHS = 15  # passes over one class's training images
BATCH_SIZE = 128  # images per gradient step
LEARNING_RATE = 2e-3  # Adam's step size, decayed to zero over training (cosine)
MASKING = 0.25  # the denoising variant: fraction of pixels set to 0, a fresh draw every batch
SEED = 0  # seeds NumPy, Python and TensorFlow
# from score to decision
PERCENTILE = 95.0  # threshold: this percentile of the held-out normal images' scores
# beyond digits
OUT_OF_DISTRIBUTION = True  # on MNIST: one all-digits detector, scored on Fashion-MNIST's test images
OOD_EPOCHS = 3  # passes over all the training images for that detector
# output
SHOW_CLASSES = None  # classes whose strangest images are shown (None: the easiest and the hardest)
OUTPUT_DIR = None  # where figures, metrics.json and models/ go (None: outputs/07_anomaly_detection)


# %%
"""
## Introduction

Chapter 01 measured how well an autoencoder rebuilds the images it was trained on. Here the
failures are the point. An autoencoder trained only on zeros learns what zeros look like; shown
a seven, it rebuilds something zero-like, and the squared difference between the image and its
reconstruction is large. That difference is an *anomaly score*, learned without a single
anomalous example:

    score(x) = sum over pixels of (x - g(f(x)))^2        high: unlike anything in training

The standard benchmark (Ruff et al., ICML 2018, and most papers since) makes ten problems of
MNIST: for each digit d, train on the training images of d only, score all 10,000 test images,
and measure how well the score separates the test images of d ("normal") from the 9,000 or so others
("anomalous") by the area under the ROC curve (AUC): the probability that a random anomaly scores
higher than a random normal image. 0.5 is a coin toss, 1.0 a perfect separation.

Three detectors per digit, all trained on the same images and scored the same way, and a
published one:

- PCA with CODE_DIM components, whose reconstruction error is the linear baseline (as in 01);
- the *autoencoder* 784 -> 256 -> 32 -> 256 -> 784, trained on clean images: the chapter's
  detector, saved as `models/class_<d>.keras`;
- the same network trained as a *denoising* autoencoder (masking noise, as in 03);
- Deep SVDD (Ruff et al.), as published, which learns a map of the normal
  images into a small ball and scores by the distance to its centre.
"""


def build_autoencoder(code_dim: int, hidden_units: tuple[int, ...], size: int) -> keras.Model:
    """A dense autoencoder of size x size images: image in, reconstruction out."""
    image = keras.Input(shape=(size, size), name="image")
    h = layers.Flatten()(image)
    for units in hidden_units:
        h = layers.Dense(units, activation="relu")(h)
    h = layers.Dense(code_dim, name="code")(h)  # linear code
    for units in reversed(hidden_units):
        h = layers.Dense(units, activation="relu")(h)
    pixels = layers.Dense(size * size, activation="sigmoid")(h)  # pixel values in [0, 1]
    return keras.Model(image, layers.Reshape((size, size), name="reconstruction")(pixels), name="detector")


def anomaly_scores(reconstruct, images: np.ndarray) -> np.ndarray:
    """The score of each image: its squared reconstruction error, summed over the pixels."""
    reconstructions = reconstruct(images)
    return np.sum((images.astype(np.float64) - reconstructions) ** 2, axis=(1, 2))


def pca(x_train: np.ndarray, n_components: int) -> tuple[np.ndarray, np.ndarray]:
    """The mean image and the top principal directions (rows) of the training images."""
    x = x_train.reshape(len(x_train), -1).astype(np.float64)
    mean = x.mean(axis=0)
    eigenvalues, eigenvectors = np.linalg.eigh(np.cov(x - mean, rowvar=False))  # ascending order
    return mean, eigenvectors[:, ::-1][:, :n_components].T


def pca_reconstruct(x: np.ndarray, mean: np.ndarray, components: np.ndarray) -> np.ndarray:
    """Project onto the principal directions and back, clipped to valid pixel values."""
    flat = x.reshape(len(x), -1) - mean
    return np.clip(flat @ components.T @ components + mean, 0, 1).reshape(x.shape)


# %%
"""
## Setup

Apply the command line's overrides to the constants above (`--help` lists them), create and
check the output folder, and seed every random generator with SEED.

Each detector is trained as a *stage*: `stages.run(name, train, *args)` seeds the random
generators from SEED and the stage's name, trains, and keeps the weights in the output folder.
Stopped with Ctrl-C, the same command run again loads the detectors already trained (and
resumes the one in progress from its last finished epoch).
"""
started = time.perf_counter()
settings, out = start(globals())
if not 0 < HELD_OUT < 1:
    raise SettingError(f"HELD_OUT={HELD_OUT}: expected a fraction between 0 and 1")
if not 0 < PERCENTILE < 100:
    raise SettingError(f"PERCENTILE={PERCENTILE}: expected a percentile between 0 and 100")
if not 0 <= MASKING < 1:
    raise SettingError(f"MASKING={MASKING}: expected a fraction of pixels, at least 0 and below 1")
stages = Stages(backup_folder(out, settings, "stages"), SEED)  # Ctrl-C, then rerun: resumes here

# %%
"""
## Prepare the data

One-class detection needs classes: the images of one class are the normal ones, the images of
every other class the anomalies. A folder of your own images therefore needs one sub-folder per
class (at least two). From each class's training images, a HELD_OUT fraction (at most
HELD_OUT_MAX) is kept aside: the detector never trains on them, and their scores set the
threshold below. The test images are only ever scored.
"""
data = load_data(DATA, DATASET, TRAIN_LIMIT, IMAGE_SIZE)
print(f"data: {data.describe()}")
if not data.labelled:
    raise DataError(
        f"{DATA or data.source}: has no classes; one-class detection needs one sub-folder of images per class "
        "(folder/<class>/*.png), or an .npz with y_train and y_test"
    )
names = list(data.class_names)
if len(names) < 2:
    raise DataError(f"{DATA or data.source}: has one class only ({names[0]}); at least two are needed")
classes = list(range(len(names))) if CLASSES is None else [int(c) for c in np.atleast_1d(CLASSES)]
if not classes or any(c < 0 or c >= len(names) for c in classes):
    raise SettingError(f"CLASSES={CLASSES}: expected class numbers from 0 to {len(names) - 1}")
train_images, held_out_images = {}, {}
for c in range(len(names)):
    images = data.x_train[data.y_train == c]
    if len(images) < 2 and c in classes:
        raise DataError(f"{DATA or data.source}: class {names[c]} has {len(images)} training image(s); 2 are needed")
    n_held = min(HELD_OUT_MAX, max(1, round(HELD_OUT * len(images))))  # the last ones: the order is random
    train_images[c], held_out_images[c] = images[:-n_held], images[-n_held:]
sizes, held = [len(train_images[c]) for c in classes], [len(held_out_images[c]) for c in classes]
print(
    f"detectors for {len(classes)} classes: {min(sizes):,}-{max(sizes):,} training images each, "
    f"{min(held)}-{max(held)} held out"
)
on_mnist = DATA is None and DATASET == "mnist"

# %%
"""
## Train: one detector per class

Every detector is the same network, trained from scratch on one class's images with Adam and
squared error (the score it will be judged by), its step size decayed to zero (cosine). The
denoising variant sees every training batch with a fresh MASKING fraction of its pixels wiped
out, and must rebuild them. PCA is fitted on the same images.
"""


def train_detector(images: np.ndarray, corruption: Corruption | None, epochs: int, seed: int, resume_dir):
    """A new autoencoder trained to rebuild `images` (from their corrupted copies when
    `corruption` is given). Returns its weights, loss history and training time."""
    model = build_autoencoder(CODE_DIM, tuple(HIDDEN_UNITS), IMAGE_SIZE)
    steps = epochs * -(-len(images) // BATCH_SIZE)
    schedule = keras.optimizers.schedules.CosineDecay(LEARNING_RATE, decay_steps=steps)
    # no XLA: compiling each of these small networks takes longer than it saves
    model.compile(optimizer=keras.optimizers.Adam(schedule), loss="mse", jit_compile=False)
    history, seconds = train_autoencoder(
        model, images, corruption, epochs=epochs, batch_size=BATCH_SIZE, seed=seed, resume_dir=resume_dir
    )
    return model.get_weights(), history, seconds


def detector(weights: list[np.ndarray]) -> keras.Model:
    model = build_autoencoder(CODE_DIM, tuple(HIDDEN_UNITS), IMAGE_SIZE)
    model.set_weights(weights)
    return model


variants = {"autoencoder": None}  # name -> the corruption of its training images
if MASKING > 0:
    variants["denoising AE"] = Corruption("masking", MASKING)
models, histories, train_seconds = {v: {} for v in variants}, {v: {} for v in variants}, {v: 0.0 for v in variants}
pcas = {}
for c in classes:
    for variant, corruption in variants.items():
        stage = f"{variant.split()[0]}_class_{c}"
        print(f"\n-- {variant} for class {names[c]} ({len(train_images[c]):,} images)")
        weights, histories[variant][c], seconds = stages.run(
            stage, train_detector, train_images[c], corruption, EPOCHS, SEED + c, stages.subfolder(stage)
        )
        models[variant][c] = detector(weights)
        train_seconds[variant] += seconds
    pcas[c] = pca(train_images[c], CODE_DIM)

# %%
"""
## Evaluate: ten detectors, their AUCs, and the published ones

Each detector scores every test image; its AUC separates the test images of its own class from
all the others (`roc_auc`, the Mann-Whitney U statistic over the number of pairs).
"""


def reconstructor(variant: str, c: int):
    """The function that rebuilds images with the detector `variant` of class `c`."""
    if variant == "PCA":
        return lambda x: pca_reconstruct(x, *pcas[c])
    return lambda x: np.asarray(models[variant][c](x, training=False))


all_variants = ["PCA", *variants]
test_scores = {v: {} for v in all_variants}  # variant -> class -> score of every test image
held_out_scores = {v: {} for v in all_variants}
auc = {v: {} for v in all_variants}
for variant in all_variants:
    for c in classes:
        rebuild = reconstructor(variant, c)
        test_scores[variant][c] = anomaly_scores(rebuild, data.x_test)
        held_out_scores[variant][c] = anomaly_scores(rebuild, held_out_images[c])
        normal = data.y_test == c
        if normal.any() and (~normal).any():
            auc[variant][c] = roc_auc(test_scores[variant][c][normal], test_scores[variant][c][~normal])
        else:
            auc[variant][c] = float("nan")  # no test image of this class: nothing to separate
mean_auc = {v: float(np.nanmean(list(auc[v].values()))) for v in all_variants}

# Ruff et al., "Deep One-Class Classification" (ICML 2018), Table 1: one-class Deep SVDD on
# MNIST, mean AUC over 10 seeds, digits 0-9, under the same protocol
deep_svdd = (0.980, 0.997, 0.917, 0.919, 0.949, 0.885, 0.983, 0.946, 0.939, 0.965)
published = {"Deep SVDD (Ruff et al.)": [deep_svdd[c] for c in classes]} if on_mnist else {}
print(f"\nROC AUC of each class's detector, {len(data.x_test):,} test images:")
print(f"{'class':<26}" + "".join(f"{names[c][:6]:>7}" for c in classes) + f"{'mean':>8}")
for variant in all_variants:
    row = "".join(f"{auc[variant][c]:>7.3f}" for c in classes)
    print(f"{variant:<26}{row}{mean_auc[variant]:>8.3f}")
for label, values in published.items():
    print(f"{label:<26}" + "".join(f"{v:>7.3f}" for v in values) + f"{np.mean(values):>8.3f}")
if published:
    wins = sum(auc["autoencoder"][c] > deep_svdd[c] for c in classes)
    print(f"the autoencoder beats Deep SVDD on {wins} of {len(classes)} digits")
    if "sample" in data.source:
        print("(the published figures are for detectors trained on the full MNIST)")
times = ", ".join(f"{v} {train_seconds[v]:.0f} s" for v in variants)
print(f"training time: {times} ({len(classes)} detectors each)")

# %%
"""
## From score to decision

An AUC ranks; a detector in service must decide. The threshold of each class is the PERCENTILE
percentile of its held-out normal images' scores: about (100 - PERCENTILE) % of normal images
will be flagged, and what matters is how many anomalies are caught at that price. No anomaly,
and no test image, is used to set it.
"""
thresholds, flagged, caught = {}, {}, {}
print(f"\nThreshold at the {PERCENTILE:g}th percentile of the held-out scores (autoencoder), on the test images:")
print(f"{'class':<8}{'threshold':>10}{'normal flagged':>16}{'anomalies caught':>18}")
for c in classes:
    scores, normal = test_scores["autoencoder"][c], data.y_test == c
    thresholds[c] = float(np.percentile(held_out_scores["autoencoder"][c], PERCENTILE))
    flagged[c] = float(np.mean(scores[normal] > thresholds[c])) if normal.any() else float("nan")
    caught[c] = float(np.mean(scores[~normal] > thresholds[c])) if (~normal).any() else float("nan")
    print(f"{names[c][:8]:<8}{thresholds[c]:>10.2f}{flagged[c]:>16.1%}{caught[c]:>18.1%}")
print(f"{'mean':<8}{'':>10}{np.nanmean(list(flagged.values())):>16.1%}{np.nanmean(list(caught.values())):>18.1%}")

# %%
"""
## Beyond digits: clothes are anomalies too

One detector trained on every digit at once (the same network, OOD_EPOCHS passes over all the
training images but the held-out ones of every digit) scores MNIST's test digits and Fashion-MNIST's test
images: an example of *out-of-distribution* detection, the question of whether an input looks
like anything the model was trained on. It runs on MNIST only, when Fashion-MNIST is at hand.
"""
ood = None
if not OUT_OF_DISTRIBUTION:
    print("\nout-of-distribution example: off (OUT_OF_DISTRIBUTION=False)")
elif not on_mnist:
    print("\nout-of-distribution example: skipped (it scores Fashion-MNIST against MNIST; the data here is another)")
else:
    try:
        fashion = load_data(None, "fashion_mnist", None, IMAGE_SIZE)
    except DataError as e:
        print(f"\nout-of-distribution example: skipped ({e})")
        fashion = None
    if fashion is not None:
        digits = np.concatenate(list(train_images.values()))
        print(f"\n-- autoencoder for every digit at once ({len(digits):,} images)")
        weights, ood_history, ood_seconds = stages.run(
            "all_digits", train_detector, digits, None, OOD_EPOCHS, SEED + 100, stages.subfolder("all_digits")
        )
        all_digits = detector(weights)

        def rebuild(x):
            return np.asarray(all_digits(x, training=False))

        digit_scores, fashion_scores = anomaly_scores(rebuild, data.x_test), anomaly_scores(rebuild, fashion.x_test)
        held = np.concatenate(list(held_out_images.values()))
        ood_threshold = float(np.percentile(anomaly_scores(rebuild, held), PERCENTILE))
        ood = {
            "auc": roc_auc(digit_scores, fashion_scores),
            "threshold": ood_threshold,
            "digits_flagged": float(np.mean(digit_scores > ood_threshold)),
            "fashion_caught": float(np.mean(fashion_scores > ood_threshold)),
            "train_seconds": round(ood_seconds, 1),
        }
        print(
            f"MNIST digits (normal) against Fashion-MNIST (anomalous), {len(data.x_test):,} + "
            f"{len(fashion.x_test):,} test images: AUC {ood['auc']:.4f}; at the {PERCENTILE:g}th percentile "
            f"threshold, {ood['fashion_caught']:.1%} of clothes caught, {ood['digits_flagged']:.1%} of digits flagged"
        )

# %%
"""
## Visualize and save

The AUC of every detector beside the published ones; the ROC curves of the autoencoders; for
the easiest and the hardest class (SHOW_CLASSES to choose), the test images the detector finds
most normal and strangest, the strangest of its own class, and the anomalies it finds most
normal (the ones it misses), with the score histograms and threshold; and every detector saved.
"""
categories = [names[c] for c in classes]
plotting.bars(
    out / "auc_per_class.png",
    categories,
    {v: [auc[v][c] for c in classes] for v in all_variants} | published,
    ylabel="ROC AUC (own class against the others)",
    title="One detector per class, on the test images",
    ylim=(max(0.0, min(np.nanmin(list(auc[v].values())) for v in all_variants) - 0.05), 1.0),
)
curves = {}
for c in classes:
    normal = data.y_test == c
    if normal.any() and (~normal).any():
        fpr, tpr, _ = roc_curve(test_scores["autoencoder"][c][normal], test_scores["autoencoder"][c][~normal])
        curves[f"{names[c]} (AUC {auc['autoencoder'][c]:.3f})"] = (fpr, tpr)
plotting.roc_curves(out / "roc_curves.png", curves, title="ROC curves of the autoencoders, test images")

ranked = sorted((c for c in classes if np.isfinite(auc["autoencoder"][c])), key=lambda c: -auc["autoencoder"][c])
shown = [c for c in np.atleast_1d(SHOW_CLASSES) if c in ranked] if SHOW_CLASSES is not None else []
shown = shown or list(dict.fromkeys([ranked[0], ranked[-1]]))  # the easiest and the hardest class
rows, panels = {}, {}
for c in shown:
    scores, normal = test_scores["autoencoder"][c], data.y_test == c
    order = np.argsort(scores)
    own = order[normal[order]]
    others = order[~normal[order]]
    rows[f"{names[c]}: most normal"] = data.x_test[order[:10]]
    rows[f"{names[c]}: strangest"] = data.x_test[order[::-1][:10]]
    rows[f"strangest {names[c]}s"] = data.x_test[own[::-1][:10]]
    rows[f"others most like {names[c]}"] = data.x_test[others[:10]]
    panels[f"detector of {names[c]}"] = {f"{names[c]} (normal)": scores[normal], "others (anomalous)": scores[~normal]}
plotting.image_rows(
    out / "strangest.png", rows, n=10, title="Test images by their score (the autoencoder of each shown class)"
)
plotting.score_histograms(
    out / "score_histograms.png",
    panels,
    {f"detector of {names[c]}": thresholds[c] for c in shown},
    xlabel="score: squared reconstruction error",
)
if ood is not None:
    plotting.score_histograms(
        out / "out_of_distribution.png",
        {"all-digits detector": {"MNIST digits": digit_scores, "Fashion-MNIST": fashion_scores}},
        {"all-digits detector": ood["threshold"]},
        xlabel="score: squared reconstruction error",
    )

(out / "models").mkdir(exist_ok=True)
detector_files = {}
for c in classes:
    filename = f"class_{re.sub(r'[^A-Za-z0-9_.-]+', '_', names[c])}.keras"
    detector_files[names[c]] = f"models/{filename}"
    save_model(models["autoencoder"][c], out / "models" / filename)
if ood is not None:
    save_model(all_digits, out / "models" / "all_digits.keras")

metrics = {
    "settings": settings,
    "data": data.source,
    "classes": categories,
    "n_train_per_class": {names[c]: len(train_images[c]) for c in classes},
    "n_held_out_per_class": {names[c]: len(held_out_images[c]) for c in classes},
    "n_test": len(data.x_test),
    "score": "squared reconstruction error, summed over the pixels",
    "auc_per_class": {v: {names[c]: auc[v][c] for c in classes} for v in all_variants},
    "mean_auc": mean_auc,
    "published_auc_per_class": {k: dict(zip(categories, v)) for k, v in published.items()},
    "threshold_percentile": PERCENTILE,
    "threshold_per_class": {names[c]: thresholds[c] for c in classes},
    "normal_flagged_per_class": {names[c]: flagged[c] for c in classes},
    "anomalies_caught_per_class": {names[c]: caught[c] for c in classes},
    "out_of_distribution": ood,
    "train_seconds": {v: round(s, 1) for v, s in train_seconds.items()},
    "detectors": detector_files,
    "loss_history": {v: {names[c]: histories[v][c]["loss"] for c in classes} for v in variants},
}
save_json(out / "metrics.json", metrics)
stages.finished()
finish(out, f"mean AUC {mean_auc['autoencoder']:.4f} over {len(classes)} classes (PCA {mean_auc['PCA']:.4f})", started)
