"""What the numbered scripts share, one job per module:

- `data`: loading the images (MNIST, Fashion-MNIST, your own), held-out splits, the test seed
- `masks`: loading your own images with their segmentation masks (chapter 09)
- `scenes`: canvases of a few digits and their masks, to segment (chapter 09)
- `corruption`: the three corruption processes, for a fixed set and as a layer for training
- `batches`: training batches drawn afresh for every step
- `classical_denoisers`: the filters a practitioner would reach for, each with its parameter tuned
- `pca`: PCA, the linear baseline
- `metrics`: MSE, PSNR and SSIM over a test set; ROC AUC
- `plotting`: the PNG figures
- `hyperparams`: `--name=value` overrides of a script's UPPER_CASE constants, and their checks
- `outputs`: the output folder, and files written so they are never half-written
- `training`: fitting a model: resumable, TensorBoard on request, a clear stop on a NaN loss
- `stages`: resuming a run made of many trainings, training by training
- `labels`: drawing a few labelled images, as many of each class
- `devices`: the backend, the compiled training step, one device or several
- `gradients`: the gradient of a model's output with respect to its input (chapter 02's pictures)
- `script`: the start and end every script shares

Keras runs on TensorFlow, JAX or PyTorch: KERAS_BACKEND chooses (`KERAS_BACKEND=jax python
01_basic_autoencoder.py`). Where it is not set, the backend of Keras' own configuration file is used
if it is installed, else the first installed of TensorFlow, JAX and PyTorch: whatever
`requirements-jax.txt` or `requirements-torch.txt` installed runs without a setting.

Under TensorFlow, importing `common` first (the scripts do) loads it with its C++ start-up lines
(CUDA drivers not found, CPU features) sent nowhere: on a CPU they say nothing a reader needs, and
they would come before even `--help` and the one-line errors.
"""

import contextlib
import importlib.util
import json
import os
import sys
from pathlib import Path

BACKENDS = ("tensorflow", "jax", "torch")


def _choose_backend() -> None:
    """Set KERAS_BACKEND, where it is not set and the backend Keras' configuration names (Keras
    writes
    TensorFlow there on its first run) is not installed, to the first installed of BACKENDS."""
    if os.environ.get("KERAS_BACKEND"):
        return
    config = Path(os.environ.get("KERAS_HOME", Path.home() / ".keras")) / "keras.json"
    try:
        configured = json.loads(config.read_text()).get("backend")
    except (OSError, ValueError, AttributeError):
        configured = None
    if configured and importlib.util.find_spec(configured) is not None:
        return
    for name in BACKENDS:
        if importlib.util.find_spec(name) is not None:
            os.environ["KERAS_BACKEND"] = name
            return


@contextlib.contextmanager
def tensorflow_start_quietly():
    """Run the block with TensorFlow's C++ start-up lines sent nowhere, if it may start TensorFlow:
    Keras imports it under its own backend, and seeds it under any other wherever it is
    installed."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if "tensorflow" in sys.modules or os.environ.get("TF_CPP_MIN_LOG_LEVEL") != "3":
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)  # before any error is reported
        os.close(saved)
        os.close(devnull)


_choose_backend()
with tensorflow_start_quietly():
    import keras  # noqa: E402

# its warnings about retracing functions are no lesson of ours
if keras.backend.backend() == "tensorflow":
    import logging  # noqa: E402

    logging.getLogger("tensorflow").setLevel(logging.ERROR)
else:
    # Under JAX or PyTorch, keras.utils.set_random_seed imports TensorFlow wherever it is installed,
    # to seed it too, which costs seconds at every start. Keras offers no public switch for that:
    # its private module_utils is told TensorFlow is absent (checked by hasattr, so a Keras without
    # it runs as before). TensorBoard, which needs TensorFlow, still imports it when asked for.
    from keras.src.utils import module_utils  # noqa: E402

    if hasattr(module_utils, "tensorflow") and hasattr(module_utils.tensorflow, "_available"):
        module_utils.tensorflow._available = False
