"""What the numbered scripts share, one job per module:

- `data`: loading the images (MNIST, Fashion-MNIST, your own), and splitting off held-out images
- `masks`: loading your own images with their segmentation masks (chapter 09)
- `corruption`: the three corruption processes, and batches with a fresh corruption each
- `classical_denoisers`: the filters a practitioner would reach for, each with its parameter tuned
- `metrics`: MSE, PSNR and SSIM over a test set
- `plotting`: the PNG figures
- `hyperparams`: `--name=value` overrides of a script's UPPER_CASE constants
- `outputs`: the output folder, and files written so they are never half-written
- `training`: fitting an autoencoder, with a clear stop on a NaN loss, and resuming after Ctrl-C
- `stages`: resuming a run made of many trainings, training by training
- `labels`: drawing a few labelled images, as many of each class
- `devices`: one device, or several under a distribution strategy
- `script`: the start and end every script shares

Importing `common` first (the scripts do) loads TensorFlow with its C++ start-up lines (CUDA
drivers not found, CPU features) sent nowhere: on a CPU they say nothing a reader needs, and they
would come before even `--help` and the one-line errors.
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def _import_tensorflow_quietly() -> None:
    if "tensorflow" in sys.modules or os.environ.get("TF_CPP_MIN_LOG_LEVEL") != "3":
        return
    sys.stderr.flush()
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        import keras  # noqa: F401, PLC0415
        import tensorflow  # noqa: F401, PLC0415
    finally:
        os.dup2(saved, 2)  # before any error is reported
        os.close(saved)
        os.close(devnull)


_import_tensorflow_quietly()
