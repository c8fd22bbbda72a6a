"""
Title: Segmentation: an encoder-decoder that labels every pixel
Description: Give the autoencoder's shape a class at every pixel instead of a grey level, measure
    what the U-Net's skip connections buy, and what denoising pretraining on images without masks
    buys when labelled masks are few.
Run: python 09_segmentation.py   (add --image_size=32 --most_objects=1 --train_scenes=12000 --test_scenes=1000 --few_masks="()" for a quick look)
"""  # noqa: E501

# %%
import time

from common import plotting
from common.corruption import masking_noise
from common.data import holdout_split, load_data
from common.errors import SettingError
from common.masks import is_mask_folder, pad_to_multiple, read_mask_folder
from common.outputs import save_json, save_model
from common.script import finish, start
from common.stages import Stages
from common.training import backup_folder, check_finite, progress_verbosity

import keras
import numpy as np
from keras import layers

# --- hyperparameters: edit here, or override on the command line (--epochs=5) ---
# data
DATASET = "mnist"  # "mnist" or "fashion_mnist": the images the scenes are made of (ignored when DATA is set)
DATA = None  # a folder with images/ and masks/ (see the README), or images to make scenes of (an .npz, ...)
IMAGE_SIZE = 48  # scenes are IMAGE_SIZE x IMAGE_SIZE pixels (images from a mask folder keep their own size)
TRAIN_LIMIT = None  # make training scenes from only the first N training images (None: all 60,000)
VALIDATION_SIZE = None  # last N training images (or image-mask pairs) held out (None: a twelfth, at most 5,000)
MOST_OBJECTS = 3  # each scene holds 1 to MOST_OBJECTS digits at random places
TRAIN_SCENES = 20000  # training scenes drawn afresh for every epoch (from a mask folder: pairs drawn at random)
TEST_SCENES = 5000  # test scenes, made once from the test images with a fixed seed (about two digits each)
# model
FILTERS = (8, 16, 32, 64)  # channels at full, 1/2, 1/4 and 1/8 scale (the code), in encoder and decoder alike
# training (the same for both networks)
EPOCHS = 1  # passes over TRAIN_SCENES fresh scenes
BATCH_SIZE = 16  # scenes per gradient step
LEARNING_RATE = 3e-3  # Adam's step size, decayed to zero over training (cosine)
# few labelled masks
FEW_MASKS = (100, 1000)  # numbers of labelled scenes; sizes larger than the training set are skipped
FEW_MASK_DRAWS = 3  # independent draws of those scenes (and of the random weights) for each number
FEW_MASK_STEPS = 400  # gradient steps of fine-tuning on them, from either start
FEW_MASK_BATCH_SIZE = 8  # scenes per step of that fine-tuning (few masks: what counts is the steps)
PRETRAIN_EPOCHS = 1  # passes over TRAIN_SCENES scenes without masks, denoising, before fine-tuning
MASKING = 0.5  # fraction of the pixels set to 0 by the pretraining's corruption
SEED = 0  # seeds NumPy, Python and TensorFlow, the training scenes and the draws
# output
OUTPUT_DIR = None  # where figures, metrics.json and model.keras go (None: outputs/09_segmentation)

TEST_SEED = 12345  # the test scenes' own seed: every run is scored on the same scenes
PUBLISHED = {"m2nist_unet_average_iou": 0.83}  # a public M2NIST U-Net; its definition of the average is unstated

# %%
"""
## Introduction

Every chapter so far asked an encoder-decoder for an image back. Ask it instead for a *class at
every pixel* and it segments: the decoder ends in a softmax over the classes at each pixel, the
loss is the cross-entropy of the true class, pixel by pixel, and nothing else changes.

The scenes here are canvases with one to three MNIST digits at random places where they do not
overlap (the idea of M2NIST). A pixel whose digit stroke covers it (pixel > 0.5) is labelled
with that digit; every other pixel is *background*: 11 classes. To label a pixel the network
must recognise the whole digit around it, so it needs both the small scale (where the stroke
is) and the large (which digit it is).

Two networks of the same depth and widths show what that takes:

    encoder-decoder   48x48 -> 24 -> 12 -> 6x6x64 code -> 12 -> 24 -> 48x48x11
    U-Net             the same, and the encoder's feature maps at every scale
                      handed across to the decoder at that scale (Ronneberger et al. 2015)

The encoder-decoder must squeeze *where* every stroke is through its 6x6 code; the U-Net's
*skip connections* give the decoder the fine detail directly, and the code only has to say
*which digit*. In both, every scale of the decoder, the code included, votes directly at every
pixel: each pixel then sees which digit the code found around it, which makes the labelling of
strokes by digit learn several times faster than through the decoder alone.

Masks are costly: someone draws them by hand. Images without masks are cheap. The last part
carries chapter 05's lesson to pixels: train the U-Net first as a denoising autoencoder on
scenes without masks, then fine-tune it on 100 or 1,000 labelled scenes, against the same
network from random weights.
"""

# %%
"""
## Setup

Apply the command line's overrides (`--help` lists them), check the output folder, seed with
SEED. Each training is a *stage* (see 05): after Ctrl-C, the same command loads the finished ones.
"""
started = time.perf_counter()
settings, out = start(globals())
for name in ("TRAIN_SCENES", "TEST_SCENES", "MOST_OBJECTS", "FEW_MASK_DRAWS", "FEW_MASK_STEPS"):
    if not (isinstance(settings[name], int) and settings[name] >= 1):
        raise SettingError(f"{name}={settings[name]!r}: must be a whole number, 1 or more")
if not all(isinstance(n, int) and n >= 1 for n in FEW_MASKS):
    raise SettingError(f"FEW_MASKS={FEW_MASKS!r}: numbers of labelled scenes must be whole numbers, 1 or more")
stages = Stages(backup_folder(out, settings, "stages"), SEED)  # Ctrl-C, then rerun: resumes here

# %%
"""
## Prepare the data

A *scene* is a blank canvas with 1 to MOST_OBJECTS images pasted at random places where their
ink touches no ink already there, as M2NIST's digits never overlap: every stroke then belongs to one
digit, and its label is never a guess. Training scenes are
made only from training images and drawn afresh for every batch (as the corruption was in 02-04),
so the network never sees the same scene twice; validation scenes from the held-out training
images; test scenes only from the test images, once, with TEST_SEED.
"""


def make_scenes(images, labels, n, size, most, rng, tries=20, margin=4):
    """`n` scenes of size x size with 1 to `most` of `images` each, and their masks: at every
    pixel, 1 + the label of the image whose stroke (pixel > 0.5) covers it, or 0 (background).
    Each image goes where its ink (pixel > 0) meets no other ink and stays on the canvas (its blank
    border, up to `margin` pixels, may not); one that finds no such place in `tries` is left out."""
    h, w = images.shape[1:3]
    big = size + 2 * margin  # the canvas and a margin all round, cropped away at the end
    scenes, masks = np.zeros((n, big, big), np.float32), np.zeros((n, big, big), np.uint8)
    count, rows, cols = rng.integers(1, most + 1, size=n), np.arange(h)[:, None], np.arange(w)[None, :]
    for slot in range(most):
        chosen, waiting = rng.integers(0, len(images), size=n), slot < count
        ink_rows, ink_cols = images[chosen].any(axis=2), images[chosen].any(axis=1)  # where their ink is:
        first = np.array([ink_rows.argmax(axis=1), ink_cols.argmax(axis=1)])
        last = np.array([h - 1 - ink_rows[:, ::-1].argmax(axis=1), w - 1 - ink_cols[:, ::-1].argmax(axis=1)])
        for _ in range(tries):
            which = np.flatnonzero(waiting)
            c, corner = chosen[which], rng.integers(0, big - h + 1, size=(2, len(which)))
            inside = np.all((corner + first[:, which] >= margin) & (corner + last[:, which] < margin + size), axis=0)
            top, left = corner[0][:, None, None] + rows, corner[1][:, None, None] + cols
            patch, canvas = images[c], scenes[which[:, None, None], top, left]
            free = inside & ~np.any((patch > 0) & (canvas > 0), axis=(1, 2))  # no ink on ink: no overlap
            put, top, left, patch = which[free][:, None, None], top[free], left[free], patch[free]
            scenes[put, top, left] = np.maximum(scenes[put, top, left], patch)
            masks[put, top, left] = np.where(patch > 0.5, labels[chosen[put]] + 1, masks[put, top, left])
            waiting[which[free]] = False
            if not waiting.any():
                break
    crop = slice(margin, margin + size)
    return scenes[:, crop, crop, None], masks[:, crop, crop]


class Batches(keras.utils.PyDataset):
    """`steps` batches an epoch, each `draw(rng, batch_size)` with a generator seeded by (seed,
    epoch, step): new batches every epoch, the same ones in every run."""

    def __init__(self, draw, steps, batch_size, seed):
        super().__init__()
        self.draw, self.steps, self.batch_size, self.seed, self.epoch = draw, steps, batch_size, seed, 0

    def __len__(self):
        return self.steps

    def __getitem__(self, step):
        return self.draw(np.random.default_rng((self.seed, self.epoch, step)), self.batch_size)

    def on_epoch_end(self):
        self.epoch += 1


mask_folder = DATA is not None and is_mask_folder(DATA)
if mask_folder:
    # your own images and masks: classes are the mask values found, 0 taken as background
    images, masks, values, names = read_mask_folder(DATA)
    masks = np.searchsorted(values, masks).astype(np.uint8)  # class k: the k-th smallest value found
    class_names = ["background" if v == 0 else f"class {v}" for v in values]
    n_test = max(1, round(len(images) / 5))  # a fifth kept for testing, as of a folder of images
    x_test, y_test = images[-n_test:], masks[-n_test:]
    x_train, x_val = holdout_split(images[:-n_test], VALIDATION_SIZE, "VALIDATION_SIZE")
    y_train, y_val = masks[:-n_test][: len(x_train)], masks[:-n_test][len(x_train) :]
    if TRAIN_LIMIT:
        x_train, y_train = x_train[:TRAIN_LIMIT], y_train[:TRAIN_LIMIT]
    (x_train, x_val, x_test), (y_train, y_val, y_test), (height, width) = pad_to_multiple(
        (x_train, x_val, x_test), (y_train, y_val, y_test), 2 ** (len(FILTERS) - 1)
    )

    def draw_labelled(rng, n):
        chosen = rng.integers(0, len(x_train), size=n)
        return x_train[chosen], y_train[chosen]

    source = f"{len(images):,} image-mask pairs from {DATA}"
else:
    if IMAGE_SIZE < 28 or IMAGE_SIZE % 2 ** (len(FILTERS) - 1):
        raise SettingError(
            f"IMAGE_SIZE={IMAGE_SIZE}: the canvas must hold a 28x28 image and halve {len(FILTERS) - 1} times "
            f"(a multiple of {2 ** (len(FILTERS) - 1)}, at least 32)"
        )
    data = load_data(DATA, DATASET, TRAIN_LIMIT, 28)
    digits, held_out = holdout_split(data.x_train, VALIDATION_SIZE, "VALIDATION_SIZE")
    labels = data.y_train if data.labelled else np.zeros(len(data.x_train), np.uint8)
    test_labels = data.y_test if data.labelled else np.zeros(len(data.x_test), np.uint8)
    class_names = ["background", *(data.class_names if data.labelled else ["object"])]

    def draw_labelled(rng, n):
        return make_scenes(digits, labels[: len(digits)], n, IMAGE_SIZE, MOST_OBJECTS, rng)

    val_rng, test_rng = np.random.default_rng(SEED), np.random.default_rng(TEST_SEED)
    n_val = len(held_out) // 2 + 1
    x_val, y_val = make_scenes(held_out, labels[len(digits) :], n_val, IMAGE_SIZE, MOST_OBJECTS, val_rng)
    x_test, y_test = make_scenes(data.x_test, test_labels, TEST_SCENES, IMAGE_SIZE, MOST_OBJECTS, test_rng)
    height = width = IMAGE_SIZE
    source = f"scenes of {IMAGE_SIZE}x{IMAGE_SIZE} made from {data.describe()}"

steps_per_epoch = max(1, TRAIN_SCENES // BATCH_SIZE)  # a few hundred pairs are drawn again and again
classes = len(class_names)
print(f"data: {source}")
print(f"validation: {len(x_val):,} scenes; test: {len(x_test):,} scenes; {classes} classes: {', '.join(class_names)}")

# %%
"""
## Build the models

Every convolution is followed by batch normalization and a ReLU. The encoder's are 3x3, and
halve the size with a stride of 2 (FILTERS[k] channels at scale 1/2^k); the decoder doubles it
back with 2x2 transposed convolutions. `skips=True` makes it a U-Net: at each scale, the
decoder's maps are concatenated with the encoder's before its next convolution.

The *body* gives the decoder's feature maps at every scale: the code (1/8), 1/4, 1/2 and full
size. The *head* lets each scale vote at every pixel: a 1x1 convolution of each, the smaller
ones enlarged to the full size (each position copied over the pixels it stands for), summed.
The same body takes a softmax over the classes (to segment) or a sigmoid over one channel (to
denoise, for pretraining): pretraining keeps the body and swaps the head.
"""


def conv(x, filters, strides=1, transpose=False):
    if transpose:  # 2x2, stride 2: each input pixel paints a 2x2 block of the output
        x = layers.Conv2DTranspose(filters, 2, strides=2, use_bias=False)(x)
    else:
        x = layers.Conv2D(filters, 3, strides=strides, padding="same", use_bias=False)(x)
    return layers.ReLU()(layers.BatchNormalization()(x))


def build_body(input_shape, filters, skips, name):
    """Image in; the decoder's feature maps at every scale out, from the code (1/8) to full size."""
    image = keras.Input(input_shape)
    x = conv(image, filters[0])
    across = [x]
    for width in filters[1:]:
        x = conv(conv(x, width, strides=2), width)
        across.append(x)
    x = conv(x, filters[-1])  # one more convolution at the smallest scale: the code
    scales = [x]
    for width, skip in zip(reversed(filters[:-1]), reversed(across[:-1])):
        x = conv(x, width, transpose=True)
        if skips:
            x = layers.Concatenate()([x, skip])
        x = conv(x, width)
        scales.append(x)
    return keras.Model(image, scales, name=name)


def with_head(body, channels, activation):
    """The body with the head on top: `channels` outputs at every pixel."""
    image = keras.Input(body.input_shape[1:])
    *coarse, full = body(image)
    votes = [layers.Conv2D(channels, 1)(full)]
    for maps in coarse:  # a 1x1 convolution at each smaller scale, each position copied over its pixels
        vote = layers.Conv2D(channels, 1, use_bias=False)(maps)
        votes.append(layers.UpSampling2D(image.shape[1] // maps.shape[1])(vote))
    return keras.Model(image, layers.Activation(activation)(layers.Add()(votes)), name=body.name)


def compile_segmenter(model, steps):
    schedule = keras.optimizers.schedules.CosineDecay(LEARNING_RATE, decay_steps=max(1, steps))
    loss = "sparse_categorical_crossentropy"  # of the true class, at every pixel
    # no XLA: on a CPU, it made these small convolutions' steps slower
    model.compile(optimizer=keras.optimizers.Adam(schedule), loss=loss, metrics=["accuracy"], jit_compile=False)
    return model


input_shape = x_test.shape[1:]

# %%
"""
## Train

Both networks see the same scenes in the same order, for EPOCHS passes of TRAIN_SCENES fresh
scenes, with the loss and step size above. The validation scenes are scored after every epoch.
"""


def train(draw, model, epochs, seed, validation=None):
    batches = Batches(draw, steps_per_epoch, BATCH_SIZE, seed)
    fit = dict(epochs=epochs, validation_data=validation, callbacks=[keras.callbacks.TerminateOnNaN()])
    history = model.fit(batches, **fit, verbose=progress_verbosity())
    check_finite(history.history)
    return history.history


def train_segmenter(skips):
    body = build_body(input_shape, FILTERS, skips, "unet" if skips else "encoder_decoder")
    model = compile_segmenter(with_head(body, classes, "softmax"), EPOCHS * steps_per_epoch)
    begun = time.perf_counter()
    history = train(draw_labelled, model, EPOCHS, SEED, validation=(x_val, y_val))
    return model.get_weights(), history, time.perf_counter() - begun


networks, histories, seconds = {}, {}, {}
for name, skips in (("encoder-decoder", False), ("U-Net", True)):
    model = networks[name] = with_head(build_body(input_shape, FILTERS, skips, name), classes, "softmax")
    print(f"\n== {name}, {model.count_params():,} weights: {EPOCHS} x {steps_per_epoch * BATCH_SIZE:,} scenes ==")
    weights, histories[name], seconds[name] = stages.run(name, train_segmenter, skips)
    model.set_weights(weights)

# %%
"""
## Evaluate: IoU per class

For each class, the *intersection over union* of the pixels labelled with it and the pixels
predicted as it, over all test scenes at once: true positives / (true positives + false
positives + false negatives). Both come from one *confusion matrix*, whose entry (i, j) counts
the pixels of class i predicted as j. The headline is the mean over the classes other than
background (the ten digits); background, most of every scene, is reported apart, as is pixel
accuracy (the fraction of pixels right), which background alone would make look good.
"""


def predict_masks(model, x):
    return np.argmax(model.predict(x, batch_size=250, verbose=0), axis=-1).astype(np.uint8)[:, :height, :width]


def confusion_matrix(true, predicted, classes):
    pairs = true.ravel().astype(np.int64) * classes + predicted.ravel()
    return np.bincount(pairs, minlength=classes * classes).reshape(classes, classes)


def iou_per_class(confusion):
    hits = np.diag(confusion).astype(np.float64)
    union = confusion.sum(axis=0) + confusion.sum(axis=1) - hits
    return np.divide(hits, union, out=np.full(len(hits), np.nan), where=union > 0)


def scores(true, predicted):
    iou = iou_per_class(confusion_matrix(true, predicted, classes))
    return {
        "iou_per_class": dict(zip(class_names, iou.tolist())),
        "mean_iou": float(np.nanmean(iou[1:])) if classes > 1 else float(iou[0]),
        "background_iou": float(iou[0]),
        "pixel_accuracy": float(np.mean(true == predicted)),
    }


y_test, y_val = y_test[:, :height, :width], y_val[:, :height, :width]  # padding, if any, is not scored
predictions = {name: predict_masks(model, x_test) for name, model in networks.items()}
results = {name: scores(y_test, p) for name, p in predictions.items()}
for name, model in networks.items():  # the validation scenes, on which settings are chosen
    results[name]["validation_mean_iou"] = scores(y_val, predict_masks(model, x_val))["mean_iou"]
gap = results["U-Net"]["mean_iou"] - results["encoder-decoder"]["mean_iou"]

print(f"\nTest scenes ({len(x_test):,}), IoU per class:")
print(f"{'':<18}" + "".join(f"{c[-10:]:>11}" for c in class_names))
for name, r in results.items():
    print(f"{name:<18}" + "".join(f"{v:>11.3f}" for v in r["iou_per_class"].values()))
print(f"\n{'':<18}{'mean IoU':>10}{'background':>12}{'pixel acc.':>12}{'validation mean IoU':>21}")
for name, r in results.items():
    print(
        f"{name:<18}{r['mean_iou']:>10.3f}{r['background_iou']:>12.3f}{r['pixel_accuracy']:>12.4f}{r['validation_mean_iou']:>21.3f}"
    )
print(f"the skip connections add {gap:+.3f} to the mean IoU (a public M2NIST U-Net: 'average IoU' 0.83)")

# %%
"""
## Few labelled masks: denoising pretraining

The U-Net's body is trained first as a denoising autoencoder on scenes *without* masks: MASKING
of the pixels set to 0 (fresh every batch), the clean scene the target, binary cross-entropy per
pixel. To rebuild a wiped-out stroke it must know its digit: it learns digits without a mask.

Then, for each number N in FEW_MASKS, N labelled training scenes are drawn and the segmenter is
fine-tuned on them for FEW_MASK_STEPS steps of FEW_MASK_BATCH_SIZE scenes, from the pretrained
body (with a new softmax head) and from random weights: the same scenes, steps and step size.
Few masks give noisy figures, so each N is drawn FEW_MASK_DRAWS times and the means compared.
"""


def draw_denoising(rng, n):
    clean = draw_labelled(rng, n)[0]
    return masking_noise(clean, MASKING, int(rng.integers(2**31))), clean


def pretrain_denoiser():
    denoiser = with_head(build_body(input_shape, FILTERS, True, "unet"), 1, "sigmoid")
    schedule = keras.optimizers.schedules.CosineDecay(LEARNING_RATE, decay_steps=PRETRAIN_EPOCHS * steps_per_epoch)
    denoiser.compile(optimizer=keras.optimizers.Adam(schedule), loss="binary_crossentropy", jit_compile=False)
    history = train(draw_denoising, denoiser, PRETRAIN_EPOCHS, SEED + 2)
    return denoiser.layers[1].get_weights(), history  # the body's weights; the sigmoid head is dropped


def fine_tune(tuner, start_weights, n, draw, seed):
    """Fine-tune `tuner` on n scenes from new random weights (the body's from `start_weights`, if given)."""
    chosen = np.random.default_rng((seed, n, draw)).choice(len(x_train), size=n, replace=False)
    few_x, few_y = x_train[chosen], y_train[chosen]
    fresh = with_head(build_body(input_shape, FILTERS, True, "unet"), classes, "softmax")  # new random weights
    if start_weights is not None:
        fresh.layers[1].set_weights(start_weights)
    tuner.set_weights(fresh.get_weights())
    for variable in tuner.optimizer.variables:  # a new optimizer: step count and moments back to 0
        variable.assign(keras.ops.zeros_like(variable))

    def draw_few(rng, size):
        pick = rng.integers(0, n, size=size)
        return few_x[pick], few_y[pick]

    history = tuner.fit(Batches(draw_few, FEW_MASK_STEPS, FEW_MASK_BATCH_SIZE, seed), epochs=1, verbose=0)
    check_finite(history.history)
    return scores(y_test, predict_masks(tuner, x_test))["mean_iou"]


if not mask_folder:  # the labelled training scenes the few-mask draws come from
    x_train, y_train = draw_labelled(np.random.default_rng(SEED + 1), max(FEW_MASKS, default=1))
few_sizes = [n for n in FEW_MASKS if n <= len(x_train)]
for n in (n for n in FEW_MASKS if n > len(x_train)):
    print(f"few masks: {n:,} skipped, there are {len(x_train):,} labelled training images (see FEW_MASKS)")
few = {}
if few_sizes:
    print(f"\n== Denoising pretraining: {PRETRAIN_EPOCHS} x {steps_per_epoch * BATCH_SIZE:,} scenes ==")
    pretrained, pretrain_history = stages.run("denoiser", pretrain_denoiser)
    tuner = with_head(build_body(input_shape, FILTERS, True, "unet"), classes, "softmax")  # one model, every start:
    tuner = compile_segmenter(tuner, FEW_MASK_STEPS)  # compiled once, not again for every start
    for n in few_sizes:
        row = {"pretrained": [], "random": []}
        for draw in range(FEW_MASK_DRAWS):
            for start_name, start_weights in (("pretrained", pretrained), ("random", None)):
                stage = f"few_{n}_{draw}_{start_name}"
                row[start_name].append(stages.run(stage, fine_tune, tuner, start_weights, n, draw, SEED + draw))
            last = {k: f"{v[-1]:.3f}" for k, v in row.items()}
            print(f"{n:>6,} masks, draw {draw + 1}: mean IoU pretrained {last['pretrained']}   random {last['random']}")
        means = {k: float(np.mean(v)) for k, v in row.items()}
        gain = (means["pretrained"] - means["random"]) / means["random"] if means["random"] > 0 else float("nan")
        few[n] = {**{k: {"draws": v, "mean": means[k]} for k, v in row.items()}, "gain": gain}
    print(f"\nMean IoU with few masks, {FEW_MASK_DRAWS} draws, {FEW_MASK_STEPS} steps of {FEW_MASK_BATCH_SIZE}:")
    print(f"{'masks':>8}{'pretrained':>12}{'random':>10}{'gain':>10}")
    for n, r in few.items():  # a ratio to a random start that learned almost nothing says little: n/a
        gain = f"{r['gain']:+.1%}" if r["random"]["mean"] >= 0.01 else "n/a"
        print(f"{n:>8,}{r['pretrained']['mean']:>12.3f}{r['random']['mean']:>10.3f}{gain:>10}")

# %%
"""
## Visualize and save

Test scenes with their true masks and both networks' predictions, coloured by class; the worst
test scenes for the U-Net, by the mean IoU of the classes in each; the IoU of every class for
both networks; and the few-mask comparison.
"""
plotting.mask_rows(
    out / "scenes.png",
    x_test[:10, :height, :width, 0],
    {"true": y_test[:10], **{name: p[:10] for name, p in predictions.items()}},
    class_names,
    title="Test scenes, their true masks, and each network's",
)
unet_predictions = predictions["U-Net"]
per_scene = np.array(
    [np.nanmean(iou_per_class(confusion_matrix(t, p, classes))[1:]) for t, p in zip(y_test, unet_predictions)]
)
worst = np.argsort(np.nan_to_num(per_scene, nan=1.0))[:10]
plotting.mask_rows(
    out / "worst.png",
    x_test[worst, :height, :width, 0],
    {"true": y_test[worst], "U-Net": unet_predictions[worst]},
    class_names,
    title=f"The U-Net's worst test scenes (mean IoU of the classes in each, from {per_scene[worst[0]]:.2f})",
)
ious = {name: list(r["iou_per_class"].values()) for name, r in results.items()}
plotting.bars(out / "iou_per_class.png", class_names, ious, "IoU on the test scenes", "IoU of every class", (0, 1))
if few:
    plotting.curves(
        out / "few_masks.png",
        list(few),
        {f"{k} start": [few[n][k]["draws"] for n in few] for k in ("pretrained", "random")},
        xlabel="labelled scenes",
        ylabel="mean IoU on the test scenes",
        title=f"U-Net fine-tuned for {FEW_MASK_STEPS} steps of {FEW_MASK_BATCH_SIZE} scenes on few masks",
        logx=True,
    )

metrics = {
    "settings": settings,
    "data": source,
    "classes": class_names,
    "n_validation": len(x_val),
    "n_test": len(x_test),
    "train_seconds": {k: round(v, 1) for k, v in seconds.items()},
    **{("unet" if k == "U-Net" else "encoder_decoder"): v for k, v in results.items()},
    "skip_gain": gap,
    "few_labels": {str(n): r for n, r in few.items()},
    "history": histories,
}
save_model(networks["U-Net"], out / "model.keras")
save_json(out / "metrics.json", metrics)
stages.finished()
headline = {name: f"{r['mean_iou']:.3f}" for name, r in results.items()}
finish(out, f"mean IoU U-Net {headline['U-Net']}, encoder-decoder {headline['encoder-decoder']}", started)
