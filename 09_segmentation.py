r"""
Title: Segmentation: an encoder-decoder that labels every pixel
Description: Give the autoencoder's shape a class at every pixel instead of a grey level, and
    measure what the U-Net's skip connections buy.
Run: python 09_segmentation.py                                                  (the full run)
     python 09_segmentation.py --image_size=32 --max_objects_per_scene=1 --scenes_per_epoch=12000 \
         --test_scenes=1000                                                     (a quick look)
"""

# %%
import time

from common import plotting
from common.batches import Batches
from common.data import load_data
from common.devices import describe, jit_compile
from common.errors import SettingError
from common.masks import is_mask_folder, mask_folder_data
from common.outputs import save_json, save_model
from common.scenes import digit_scenes
from common.script import finish, start
from common.stages import Stages
from common.training import backup_folder, check_finite, progress_verbosity

import keras
import numpy as np
from keras import layers

# --- hyperparameters: edit here, or override on the command line (--epochs=5) ---
# data
DATASET = "mnist"  # "mnist" or "fashion_mnist": the images the scenes are made of (ignored when
#                    DATA is set)
DATA = None  # a folder with images/ and masks/ (see the README), or images to make scenes of (an
#              .npz, ...)
IMAGE_SIZE = 48  # scenes are IMAGE_SIZE x IMAGE_SIZE pixels (images from a mask folder keep their
#                  own size)
TRAIN_LIMIT = None  # make training scenes from only the first N training images (None: all 60,000)
VALIDATION_SIZE = None  # the last N training images (or image-mask pairs), held out (None: a
#                         twelfth, at most 5,000)
MAX_OBJECTS_PER_SCENE = 3  # each scene holds 1 to this many digits, at random places
SCENES_PER_EPOCH = 20000  # training scenes an epoch, each made afresh (from a mask folder: pairs
#                           drawn at random)
TEST_SCENES = 5000  # test scenes, made once from the test images with the fixed test seed (about
#                     two digits each)
# model
FILTERS = (8, 16, 32, 64)  # channels at full, 1/2, 1/4 and 1/8 scale (the bottleneck), in encoder
#                            and decoder alike
# training (the same for both networks)
EPOCHS = 1  # passes of SCENES_PER_EPOCH fresh scenes
BATCH_SIZE = 16  # scenes per gradient step
LEARNING_RATE = 3e-3  # Adam's step size, decayed to zero over training (cosine)
SEED = 0  # seeds every random draw: NumPy's, Python's and the backend's, and the training scenes
# output
OUTPUT_DIR = None  # where figures, metrics.json and model.keras go (None: outputs/09_segmentation)

PUBLISHED = {"m2nist_unet_average_iou": 0.83}  # a public M2NIST U-Net; its definition of the
#                                                average is unstated

# %%
"""
## Introduction

Every chapter so far asked an encoder-decoder for an image back. Ask it instead for a *class at
every pixel* and it segments: the decoder ends in a score for each class at each pixel (their
softmax: the probabilities of the classes), the loss is the cross-entropy of the true class, pixel
by pixel, and nothing else changes in how it learns.

The scenes here are canvases with one to three MNIST digits at random places where they do not
overlap (the idea of M2NIST, a public set of scenes of MNIST digits). A pixel whose digit stroke
covers it (pixel > 0.5) is labelled with that digit; every other pixel is *background*: 11 classes.
To label a pixel the network must recognise the whole digit around it, so it needs both the small
scale (where the stroke is) and the large (which digit it is).

Two networks of the same depth and widths show what that takes:

    encoder-decoder   48x48 -> 24 -> 12 -> 6x6x64 bottleneck -> 12 -> 24 -> 48x48x11
    U-Net             the same, and the encoder's feature maps at 48, 24 and 12
                      handed across to the decoder at that scale (Ronneberger et al. 2015)

The encoder-decoder must squeeze *where* every stroke is through its 6x6 bottleneck map; the
U-Net's *skip connections* give the decoder the fine detail directly, and the bottleneck only has
to say *which digit*. Both end in the same head (see "Build the models"), so the skips are all
that differs between them. (Masks are costly; `further/09_few_masks.py` pretrains this U-Net
without them, as a denoising autoencoder, and fine-tunes it on a few.)
"""

# %%
"""
## Setup

Apply the command line's overrides (`--help` lists them), check them and the output folder, seed
with SEED. Each training is a *stage* (see 05): after Ctrl-C, the same command loads the finished
ones.
"""
started = time.perf_counter()
settings, out = start(globals())
stages = Stages(backup_folder(out, settings, "stages"), SEED)  # Ctrl-C, then rerun: resumes here

# %%
"""
## Prepare the data

A *scene* is a blank canvas with 1 to MAX_OBJECTS_PER_SCENE images pasted at random places where
their ink touches no ink already there, as M2NIST's digits never overlap: every stroke then belongs
to one digit, and its label is never a guess (`common/scenes.py` makes them). Training scenes are
made only from training images and drawn afresh for every batch (as the corruption was in 02-04),
so the network never sees the same scene twice; validation scenes from the held-out training images
(about one scene for every two images); test scenes only from the test images, once, with the fixed
test seed.

A folder of your own images and masks (`images/` and `masks/`) is used as it is instead: its
classes are the mask values found, a fifth of the pairs is kept for testing, and each training
batch draws pairs at random.
"""
if DATA is not None and is_mask_folder(DATA):
    data = mask_folder_data(DATA, VALIDATION_SIZE, TRAIN_LIMIT, multiple=2 ** (len(FILTERS) - 1))
else:
    if IMAGE_SIZE < 28 or IMAGE_SIZE % 2 ** (len(FILTERS) - 1):
        raise SettingError(
            f"IMAGE_SIZE={IMAGE_SIZE}: the canvas must hold a 28x28 image and halve "
            f"{len(FILTERS) - 1} times "
            f"(a multiple of {2 ** (len(FILTERS) - 1)}, at least 32)"
        )
    digits = load_data(DATA, DATASET, TRAIN_LIMIT, 28)
    data = digit_scenes(digits, VALIDATION_SIZE, IMAGE_SIZE, MAX_OBJECTS_PER_SCENE, TEST_SCENES)
steps_per_epoch = max(1, SCENES_PER_EPOCH // BATCH_SIZE)
n_classes = len(data.class_names)
print(f"data: {data.source}")
print(
    f"validation: {len(data.x_val):,} scenes; test: {len(data.x_test):,} scenes; {n_classes} "
    "classes"
)

# %%
"""
## Build the models

Every convolution is followed by batch normalization and a ReLU. The encoder's are 3x3, and
halve the size with a stride of 2 (FILTERS[k] channels at scale 1/2^k); the decoder doubles it
back with 2x2 transposed convolutions. `skips=True` makes it a U-Net: at each scale, the
decoder's maps are concatenated with the encoder's before its next convolution.

The *body* gives the decoder's feature maps at every scale: the bottleneck (1/8), 1/4, 1/2 and
full size. The *head* (this chapter's own design, not Ronneberger et al.'s) lets each scale vote at
every pixel: a 1x1 convolution of each, the smaller ones enlarged to the full size (each position
copied over the pixels it stands for), summed. Each pixel then sees which digit the bottleneck
found around it. Ronneberger et al.'s head, a 1x1 convolution of the full-size maps alone, is the
standard one, but here it learns too slowly: after the same 20,000 scenes its U-Net reached a
validation mean IoU of 0.59 (this head: 0.89) and its encoder-decoder labelled only background
(docs/09_segmentation.md).
"""


def conv_bn_relu(x, channels, strides=1):
    """A 3x3 convolution (stride 2 halves the size), batch normalization, ReLU."""
    x = layers.Conv2D(channels, 3, strides=strides, padding="same", use_bias=False)(x)
    x = layers.BatchNormalization()(x)
    return layers.ReLU()(x)


def upsample_bn_relu(x, channels):
    """A 2x2 transposed convolution of stride 2 (each input pixel paints a 2x2 block of the
    output: the size doubles), batch normalization, ReLU."""
    x = layers.Conv2DTranspose(channels, 2, strides=2, use_bias=False)(x)
    x = layers.BatchNormalization()(x)
    return layers.ReLU()(x)


def build_body(input_shape, filters, skips, name):
    """Image in; the decoder's maps at every scale out, from the bottleneck (1/8) to full size."""
    image = keras.Input(input_shape)
    x = conv_bn_relu(image, filters[0])
    # the encoder's maps at full, 1/2, 1/4 and 1/8 scale; a U-Net hands the first three across
    encoder_maps = [x]
    for channels in filters[1:]:
        x = conv_bn_relu(x, channels, strides=2)
        x = conv_bn_relu(x, channels)
        encoder_maps.append(x)
    x = conv_bn_relu(x, filters[-1])  # one more convolution at the smallest scale: the bottleneck
    scales = [x]
    # up the decoder: 1/4, 1/2, full, each beside the encoder's maps of the same scale
    for channels, skip in zip(reversed(filters[:-1]), reversed(encoder_maps[:-1])):
        x = upsample_bn_relu(x, channels)
        if skips:
            x = layers.Concatenate()([x, skip])
        x = conv_bn_relu(x, channels)
        scales.append(x)
    return keras.Model(image, scales, name=name)


def with_head(body, channels, name):
    """The body with the head on top: `channels` scores at every pixel."""
    image = keras.Input(body.input_shape[1:])
    *coarse, full = body(image)  # the body's maps: [bottleneck, 1/4, 1/2] and the full size
    # one bias in the sum is enough: the other votes have none
    votes = [layers.Conv2D(channels, 1)(full)]
    # a 1x1 convolution at each smaller scale, each position copied over its pixels
    for maps in coarse:
        vote = layers.Conv2D(channels, 1, use_bias=False)(maps)
        votes.append(layers.UpSampling2D(image.shape[1] // maps.shape[1])(vote))
    return keras.Model(image, layers.Add()(votes), name=name)


def segmenter(skips):
    """A new network with random weights: the U-Net (`skips`) or the encoder-decoder, segmenting.
    Its body is the layer named "unet" or "encoder_decoder"; it gives class scores, not
    probabilities (the loss takes their softmax)."""
    name = "unet" if skips else "encoder_decoder"
    body = build_body(data.x_test.shape[1:], FILTERS, skips, name)
    return with_head(body, n_classes, f"{name}_segmenter")


# %%
"""
## Train

Both networks see the same scenes in the same order, for EPOCHS passes of SCENES_PER_EPOCH fresh
scenes, with Adam and a step size decayed to zero (cosine). The loss is the cross-entropy of the
true class at every pixel, from the softmax of the scores: taken inside the loss (`from_logits`),
it is computed more stably than from probabilities. The validation scenes are scored after every
epoch.
"""


def train_segmenter(skips):
    model = segmenter(skips)
    schedule = keras.optimizers.schedules.CosineDecay(LEARNING_RATE, EPOCHS * steps_per_epoch)
    model.compile(
        optimizer=keras.optimizers.Adam(schedule),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
        # under TensorFlow without XLA: on a CPU, it made these small convolutions' steps slower
        jit_compile=jit_compile(on_tensorflow=False),
    )
    begun = time.perf_counter()
    history = model.fit(
        Batches(data.draw, steps_per_epoch, BATCH_SIZE, SEED),  # fresh scenes, made batch by batch
        epochs=EPOCHS,
        validation_data=(data.x_val, data.y_val),
        callbacks=[keras.callbacks.TerminateOnNaN()],
        verbose=progress_verbosity(),
    )
    check_finite(history.history)
    return model.get_weights(), history.history, time.perf_counter() - begun


networks = {}
histories = {}
seconds = {}
for name, skips in (("encoder-decoder", False), ("U-Net", True)):
    model = segmenter(skips)  # built here to take the weights, trained or (after Ctrl-C) loaded
    print(
        f"\n== {name}, {model.count_params():,} weights: {EPOCHS} x "
        f"{steps_per_epoch * BATCH_SIZE:,} scenes =="
    )
    weights, histories[name], seconds[name] = stages.run(name, train_segmenter, skips)
    model.set_weights(weights)
    networks[name] = model

# %%
"""
## Evaluate: IoU per class

For each class, the *intersection over union* of the pixels labelled with it and the pixels
predicted as it, over all test scenes at once: true positives / (true positives + false
positives + false negatives). The intersections and the unions both come from one *confusion
matrix*, whose entry (i, j) counts the pixels of class i predicted as j. The headline is the
mean over the classes other than background (the ten digits); background, most of every scene,
is reported apart, as is pixel accuracy (the fraction of pixels right), which background alone
would make look good.
"""
height = data.height  # padding, if any, is not scored
width = data.width
y_test = data.y_test[:, :height, :width]
y_val = data.y_val[:, :height, :width]


def predict_masks(model, x):
    scores = model.predict(x, batch_size=250, verbose=0)
    return np.argmax(scores, axis=-1).astype(np.uint8)[:, :height, :width]


def confusion_matrix(true, predicted, n_classes):
    # each pixel's (true, predicted) pair as one number, true * n_classes + predicted, then counted
    pairs = true.ravel().astype(np.int64) * n_classes + predicted.ravel()
    return np.bincount(pairs, minlength=n_classes * n_classes).reshape(n_classes, n_classes)


def iou_per_class(confusion):
    hits = np.diag(confusion).astype(np.float64)
    union = confusion.sum(axis=0) + confusion.sum(axis=1) - hits
    return np.divide(hits, union, out=np.full(len(hits), np.nan), where=union > 0)


def segmentation_scores(true, predicted):
    iou = iou_per_class(confusion_matrix(true, predicted, n_classes))
    objects = iou[1:] if n_classes > 1 else iou  # [1:]: not background
    return {
        "iou_per_class": dict(zip(data.class_names, iou.tolist())),
        "mean_iou": float(np.nanmean(objects)),
        "background_iou": float(iou[0]),
        "pixel_accuracy": float(np.mean(true == predicted)),
    }


predictions = {name: predict_masks(model, data.x_test) for name, model in networks.items()}
results = {name: segmentation_scores(y_test, p) for name, p in predictions.items()}
# the validation scenes' mean IoU, printed beside: the settings were chosen on validation scenes,
# never on test
for name, model in networks.items():
    results[name]["validation_mean_iou"] = segmentation_scores(
        y_val, predict_masks(model, data.x_val)
    )["mean_iou"]
gap = results["U-Net"]["mean_iou"] - results["encoder-decoder"]["mean_iou"]

print(f"\nTest scenes ({len(data.x_test):,}), IoU per class:")
print(f"{'':<18}" + "".join(f"{c[-10:]:>11}" for c in data.class_names))
for name, r in results.items():
    print(f"{name:<18}" + "".join(f"{v:>11.3f}" for v in r["iou_per_class"].values()))
print(f"\n{'':<18}{'mean IoU':>10}{'background':>12}{'pixel acc.':>12}{'validation mean IoU':>21}")
for name, r in results.items():
    figures = f"{r['mean_iou']:>10.3f}{r['background_iou']:>12.3f}{r['pixel_accuracy']:>12.4f}"
    print(f"{name:<18}{figures}{r['validation_mean_iou']:>21.3f}")
published_iou = PUBLISHED["m2nist_unet_average_iou"]
print(
    f"the skip connections add {gap:+.3f} to the mean IoU (a public M2NIST U-Net: 'average IoU' "
    f"{published_iou})"
)

# %%
"""
## Visualize and save

Test scenes with their true masks and both networks' predictions, coloured by class; the worst
test scenes for the U-Net, by the mean IoU of the classes in each; the IoU of every class for
both networks. The U-Net is saved with a softmax on its scores (`further/09_few_masks.py` takes
its body).
"""
plotting.mask_rows(
    out / "scenes.png",
    data.x_test[:10, :height, :width, 0],
    {"true": y_test[:10], **{name: p[:10] for name, p in predictions.items()}},
    data.class_names,
    title="Test scenes, their true masks, and each network's",
)
unet_predictions = predictions["U-Net"]
per_scene = []  # the mean IoU of the classes in each test scene
for true, predicted in zip(y_test, unet_predictions):
    per_scene.append(np.nanmean(iou_per_class(confusion_matrix(true, predicted, n_classes))[1:]))
per_scene = np.array(per_scene)
# a scene without digits (NaN) is not among the worst
worst = np.argsort(np.nan_to_num(per_scene, nan=1.0))[:10]
lowest = per_scene[worst[0]]
plotting.mask_rows(
    out / "worst.png",
    data.x_test[worst, :height, :width, 0],
    {"true": y_test[worst], "U-Net": unet_predictions[worst]},
    data.class_names,
    title=f"The U-Net's worst test scenes (mean IoU of the classes in each, from {lowest:.2f})",
)
ious = {name: list(r["iou_per_class"].values()) for name, r in results.items()}
plotting.bars(
    out / "iou_per_class.png",
    data.class_names,
    ious,
    ylabel="IoU on the test scenes",
    title="IoU of every class",
    ylim=(0, 1),
)
metrics = {
    "settings": settings,
    "keras": describe(),
    "data": data.source,
    "classes": data.class_names,
    "n_validation": len(data.x_val),
    "n_test": len(data.x_test),
    "unet": results["U-Net"],
    "encoder_decoder": results["encoder-decoder"],
    "skip_gain": gap,
    "published": PUBLISHED,
    "history": histories,
    "seconds": {
        "encoder_decoder": round(seconds["encoder-decoder"], 1),
        "unet": round(seconds["U-Net"], 1),
        "total": round(time.perf_counter() - started, 1),
    },
}
unet_segmenter = networks["U-Net"]
probabilities = layers.Softmax()(unet_segmenter.output)
unet_probabilities = keras.Model(unet_segmenter.input, probabilities, name="unet_probabilities")
save_model(unet_probabilities, out / "model.keras")  # the U-Net, and the softmax of its scores
save_json(out / "metrics.json", metrics)
stages.finished()
unet_iou = results["U-Net"]["mean_iou"]
encoder_decoder_iou = results["encoder-decoder"]["mean_iou"]
finish(out, f"mean IoU U-Net {unet_iou:.3f}, encoder-decoder {encoder_decoder_iou:.3f}", started)
