r"""
Title: Few masks: denoising pretraining for segmentation
Description: Train chapter 09's U-Net first as a denoising autoencoder on scenes without masks, then
    on 100 or 1,000 labelled scenes, against the same network from random weights.
Run: python further/09_few_masks.py                                            (the full run)
     python further/09_few_masks.py --scenes_per_epoch=12000 --few_masks="(100,)" \
         --few_mask_draws=2                                                    (a quick look)
"""

# %%
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the project's root, for common/

import json
import time

from common import plotting
from common.batches import Batches
from common.corruption import Corruption
from common.data import load_data
from common.devices import describe, jit_compile
from common.errors import SettingError
from common.masks import is_mask_folder, mask_folder_data
from common.outputs import chapter_files, save_json, save_model
from common.scenes import digit_scenes
from common.script import finish, start
from common.stages import Stages
from common.training import backup_folder, check_finite, progress_verbosity

import keras
import numpy as np
from keras import layers

# --- hyperparameters: edit here, or override on the command line (--few_mask_draws=1) ---
# the chapter's run: its U-Net, and its scenes (the data and scene settings in its metrics.json)
CHAPTER_DIR = None  # where 09_segmentation.py saved its models (None: outputs/09_segmentation)
# denoising pretraining, on scenes without masks
PRETRAIN_EPOCHS = 1  # passes of SCENES_PER_EPOCH scenes without masks, training the U-Net as a
#                      denoiser
SCENES_PER_EPOCH = 20000  # scenes a pass, each made afresh
BATCH_SIZE = 16  # scenes per step of that pretraining
MASKING = 0.5  # fraction of the pixels set to 0 by the pretraining's corruption
LEARNING_RATE = 3e-3  # Adam's step size, decayed to zero (cosine), in every training here
# few labelled masks
FEW_MASKS = (100, 1000)  # numbers of labelled scenes; sizes larger than the training set are
#                          skipped
FEW_MASK_DRAWS = 3  # independent draws of those scenes (and of the random weights) for each number
FEW_MASK_STEPS = 400  # gradient steps of training on them, from either start
SEED = 0  # seeds every random draw: NumPy's, Python's and the backend's, the scenes and the draws
# output
OUTPUT_DIR = None  # where figures, metrics.json and denoiser.keras go (None:
#                    outputs/09_few_masks)

# %%
"""
## Introduction

Masks are costly: someone draws them by hand. Scenes without masks are cheap. Chapter 05 showed,
for a classifier, what a denoising autoencoder learns from images without labels; here the same
holds for pixels. Chapter 09's U-Net is trained first as a denoising autoencoder: MASKING of the
pixels of each scene set to 0, the clean scene its target. To rebuild a wiped-out stroke it must
know what digit it belongs to, so it learns digits without a single mask. Then it is trained on
100 or 1,000 labelled scenes, against the same network from random weights, given the same scenes,
steps and step size. Few masks give noisy figures, so each number is drawn FEW_MASK_DRAWS times.

The network is the chapter's: its U-Net is loaded from `model.keras`, and each training here
starts from a copy of its layers with new random weights. The scenes are the chapter's too: made
with the data and scene settings its run saved, so the test scenes are the same.
"""

# %%
"""
## Setup

Apply the command line's overrides (`--help` lists them), find the chapter's saved files (a
one-line error names the command that makes them), seed with SEED. Each training is a *stage*:
after Ctrl-C, the same command loads the finished ones.
"""
started = time.perf_counter()
settings, out = start(globals())
model_path, chapter_metrics_path = chapter_files(
    "09_segmentation", CHAPTER_DIR, "model.keras", "metrics.json"
)
chapter = json.loads(chapter_metrics_path.read_text(encoding="utf-8"))
stages = Stages(backup_folder(out, settings, "stages"), SEED)  # Ctrl-C, then rerun: resumes here

# %%
"""
## Prepare the data

The chapter's scenes, made as its run made them: training scenes drawn afresh for every batch,
test scenes once, with the fixed test seed. The labelled scenes of the few-mask draws come from a
pool of training scenes made once, FEW_MASK_DRAWS times the largest number in FEW_MASKS.
"""
scene_settings = chapter["settings"]
data_setting = scene_settings["DATA"]
if data_setting is not None and is_mask_folder(data_setting):
    multiple = 2 ** (len(scene_settings["FILTERS"]) - 1)
    data = mask_folder_data(
        data_setting, scene_settings["VALIDATION_SIZE"], scene_settings["TRAIN_LIMIT"], multiple
    )
else:
    digits = load_data(data_setting, scene_settings["DATASET"], scene_settings["TRAIN_LIMIT"], 28)
    data = digit_scenes(
        digits,
        scene_settings["VALIDATION_SIZE"],
        scene_settings["IMAGE_SIZE"],
        scene_settings["MAX_OBJECTS_PER_SCENE"],
        scene_settings["TEST_SCENES"],
    )
if data.source != chapter["data"]:
    raise SettingError(
        f"the chapter's scenes were {chapter['data']}, these are {data.source}: "
        "run both with the same data (MNIST_PATH too)"
    )
n_classes = len(data.class_names)
height = data.height  # padding, if any, is not scored
width = data.width
y_test = data.y_test[:, :height, :width]
print(f"data: {data.source}; test: {len(data.x_test):,} scenes")

if data.x_train is not None:  # a folder of images and masks: its training pairs
    x_labelled = data.x_train
    y_labelled = data.y_train
else:  # scenes, made once: FEW_MASK_DRAWS times as many as the largest few-mask size
    pool_size = max(FEW_MASKS, default=1) * FEW_MASK_DRAWS
    pool_seed = SEED + 1  # a seed of its own: scenes other than the pretraining's
    x_labelled, y_labelled = data.draw(np.random.default_rng(pool_seed), pool_size)


def mean_iou(model, x, true):
    """The chapter's headline: the IoU of each class but background, over all scenes at once,
    averaged."""
    predicted = np.argmax(model.predict(x, batch_size=250, verbose=0), axis=-1)
    predicted = predicted[:, :height, :width]
    objects = range(1, n_classes) if n_classes > 1 else range(1)  # not background
    ious = []
    for c in objects:
        both = np.sum((true == c) & (predicted == c))
        either = np.sum((true == c) | (predicted == c))
        if either:
            ious.append(both / either)
    return float(np.mean(ious))


# %%
"""
## The chapter's U-Net, and new ones

The chapter's U-Net with all its masks is the mark to reach. Its *body* (the layer "unet": the
decoder's maps at every scale) is copied, with new random weights, under one of two heads: the
chapter's (each scale's 1x1 convolution, enlarged to the full size and summed), giving either a
score for each class (to segment) or one sigmoid channel (to denoise). Pretraining keeps the body
and swaps the head.
"""
chapter_unet = keras.models.load_model(model_path)
chapter_iou = mean_iou(chapter_unet, data.x_test, y_test)
chapter_body = chapter_unet.get_layer("unet")
print(f"the chapter's U-Net, trained on all its masks: mean IoU {chapter_iou:.3f}")


def with_head(body, channels, activation, name):
    """The body with the chapter's head on top: `channels` outputs at every pixel."""
    image = keras.Input(body.input_shape[1:])
    *coarse, full = body(image)  # the body's maps: [bottleneck, 1/4, 1/2] and the full size
    votes = [layers.Conv2D(channels, 1)(full)]  # one bias in the sum is enough
    for maps in coarse:
        vote = layers.Conv2D(channels, 1, use_bias=False)(maps)
        votes.append(layers.UpSampling2D(image.shape[1] // maps.shape[1])(vote))
    summed = layers.Add()(votes)
    return keras.Model(image, layers.Activation(activation)(summed), name=name)


def new_unet(channels, activation, name):
    """The chapter's U-Net with new random weights and a head of `channels`; and its body."""
    body = keras.models.clone_model(chapter_body)  # the same layers, new random weights
    return with_head(body, channels, activation, name), body


# %%
"""
## Pretrain: a denoising autoencoder on scenes without masks

The corruption is the model's first layer, active only in training, a fresh draw for every batch
(as in chapters 02-06); the clean scene is the target; the loss is binary cross-entropy per pixel.
"""


def draw_clean(rng, n):
    """n training scenes without their masks: the input and the target of the denoiser."""
    scenes = data.draw(rng, n)[0]
    return scenes, scenes


def pretrain_denoiser():
    denoiser, body = new_unet(1, "sigmoid", "unet_denoiser")
    masking = Corruption("masking", MASKING)
    masking_then_denoiser = keras.Sequential(
        [keras.Input(denoiser.input_shape[1:]), masking.layer(SEED), denoiser]
    )
    steps_per_epoch = max(1, SCENES_PER_EPOCH // BATCH_SIZE)
    schedule = keras.optimizers.schedules.CosineDecay(
        LEARNING_RATE, PRETRAIN_EPOCHS * steps_per_epoch
    )
    masking_then_denoiser.compile(
        optimizer=keras.optimizers.Adam(schedule),
        loss="binary_crossentropy",
        jit_compile=jit_compile(),
    )
    history = masking_then_denoiser.fit(
        # a seed of its own: scenes other than the chapter's training scenes
        Batches(draw_clean, steps_per_epoch, BATCH_SIZE, SEED + 2),
        epochs=PRETRAIN_EPOCHS,
        callbacks=[keras.callbacks.TerminateOnNaN()],
        verbose=progress_verbosity(),
    )
    check_finite(history.history)
    return denoiser.get_weights(), body.get_weights()  # the body's weights start the segmenters


print(f"\n== Denoising pretraining: {PRETRAIN_EPOCHS} x {SCENES_PER_EPOCH:,} scenes ==")
denoiser_weights, pretrained = stages.run("denoiser", pretrain_denoiser)
denoiser, _ = new_unet(1, "sigmoid", "unet_denoiser")
denoiser.set_weights(denoiser_weights)

# %%
"""
## Train on few masks, from either start

For each number N in FEW_MASKS, N labelled scenes are drawn, and the segmenter is trained on them
for FEW_MASK_STEPS steps of 8 scenes (with few masks, what counts is the steps), from the
pretrained body (with a new head of class scores) and from random weights: the same scenes, steps
and step size. Every layer trains from the first step (unlike chapter 05, no linear probe first).
"""
few_mask_batch_size = 8


def train_on_few_masks(segmenter, start_weights, n, draw_index):
    """Train `segmenter` on n labelled scenes (the draw `draw_index`) from new random weights, the
    body's from `start_weights` if given; return its mean IoU on the test scenes."""
    # the same scenes and batches for both starts; NumPy seeded with (draw_seed, n) or (draw_seed,
    # 0, step) gives streams other than those seeded with SEED + 1 or SEED + 2 alone
    draw_seed = SEED + draw_index
    chosen = np.random.default_rng((draw_seed, n)).choice(len(x_labelled), size=n, replace=False)
    few_x = x_labelled[chosen]
    few_y = y_labelled[chosen]
    fresh, body = new_unet(n_classes, "linear", "unet_segmenter")
    if start_weights is not None:
        body.set_weights(start_weights)  # the body, pretrained
    segmenter.set_weights(fresh.get_weights())
    # a new optimizer: its step count and moments back to 0 (its step size is a schedule of the
    # step count)
    for variable in segmenter.optimizer.variables:
        variable.assign(np.zeros(variable.shape, variable.dtype))

    def draw_few(rng, size):
        pick = rng.integers(0, n, size=size)
        return few_x[pick], few_y[pick]

    batches = Batches(draw_few, FEW_MASK_STEPS, few_mask_batch_size, draw_seed)
    history = segmenter.fit(batches, epochs=1, verbose=0)
    check_finite(history.history)
    return mean_iou(segmenter, data.x_test, y_test)


# one segmenter compiled once for every training (compiling takes seconds): each gives it new
# weights and a new optimizer
segmenter, _ = new_unet(n_classes, "linear", "unet_segmenter")
segmenter.compile(
    optimizer=keras.optimizers.Adam(
        keras.optimizers.schedules.CosineDecay(LEARNING_RATE, FEW_MASK_STEPS)
    ),
    loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    jit_compile=jit_compile(on_tensorflow=False),  # no XLA under TensorFlow, as in the chapter
)
few = {}
for n in FEW_MASKS:
    if n > len(x_labelled):
        print(f"few masks: {n:,} skipped, there are {len(x_labelled):,} labelled training scenes")
        continue
    row = {"pretrained": [], "random": []}
    for draw_index in range(FEW_MASK_DRAWS):
        for start_name, start_weights in (("pretrained", pretrained), ("random", None)):
            stage = f"few_{n}_{draw_index}_{start_name}"
            iou = stages.run(stage, train_on_few_masks, segmenter, start_weights, n, draw_index)
            row[start_name].append(iou)
        last = {k: f"{v[-1]:.3f}" for k, v in row.items()}
        label = f"{n:>6,} masks, draw {draw_index + 1}"
        print(f"{label}: mean IoU pretrained {last['pretrained']}   random {last['random']}")
    means = {k: float(np.mean(v)) for k, v in row.items()}
    # the gain relative to the random start; n/a when that learned almost nothing (a ratio to ~0
    # says little)
    gain = float("nan")
    if means["random"] >= 0.01:
        gain = (means["pretrained"] - means["random"]) / means["random"]
    few[n] = {
        "pretrained": {"draws": row["pretrained"], "mean": means["pretrained"]},
        "random": {"draws": row["random"], "mean": means["random"]},
        "gain": gain,
    }

# %%
"""
## Evaluate

The mean IoU over the ten digits on the chapter's test scenes, each start's mean over the draws,
beside the chapter's U-Net trained on all its masks.
"""
print(
    f"\nMean IoU with few masks, {FEW_MASK_DRAWS} draws, {FEW_MASK_STEPS} steps of "
    f"{few_mask_batch_size} (the chapter's U-Net, all masks: {chapter_iou:.3f}):"
)
print(f"{'masks':>8}{'pretrained':>12}{'random weights':>16}{'gain':>10}")
for n, r in few.items():
    gain = f"{r['gain']:+.1%}" if np.isfinite(r["gain"]) else "n/a"
    print(f"{n:>8,}{r['pretrained']['mean']:>12.3f}{r['random']['mean']:>16.3f}{gain:>10}")

# %%
"""
## Visualize and save

The few-mask curve: each start's mean IoU against the number of labelled scenes, a band over the
draws; test scenes, corrupted as in pretraining, and what the denoiser made of them.
"""
if few:
    plotting.curves(
        out / "few_masks.png",
        list(few),
        {
            "pretrained as a denoising autoencoder": [few[n]["pretrained"]["draws"] for n in few],
            "random weights": [few[n]["random"]["draws"] for n in few],
        },
        xlabel="labelled scenes",
        ylabel="mean IoU on the test scenes",
        title=f"U-Net, {FEW_MASK_STEPS} steps of {few_mask_batch_size} scenes on few masks",
        logx=True,
    )
shown = data.x_test[:10]
masked = Corruption("masking", MASKING)(shown, SEED)
plotting.image_rows(
    out / "denoised.png",
    {
        "scene": shown[..., 0],
        "masked": masked[..., 0],
        "denoised": denoiser.predict(masked, verbose=0)[..., 0],
    },
    n=10,
    title=f"The pretraining: {MASKING:.0%} of the pixels masked, and rebuilt",
)
metrics = {
    "settings": settings,
    "keras": describe(),
    "data": data.source,
    "chapter_unet_mean_iou": chapter_iou,
    "few_masks": {str(n): r for n, r in few.items()},
    "few_mask_batch_size": few_mask_batch_size,
    "seconds": {"total": round(time.perf_counter() - started, 1)},
}
save_model(denoiser, out / "denoiser.keras")  # the pretrained U-Net, with its denoising head
save_json(out / "metrics.json", metrics)
stages.finished()
headline = ", ".join(
    f"{n:,} masks: pretrained {r['pretrained']['mean']:.3f}, random {r['random']['mean']:.3f}"
    for n, r in few.items()
)
finish(out, f"mean IoU with {headline or 'no few-mask size run'}", started)
