"""What the numbered scripts share, one job per module:

- `data`: loading MNIST (a file you name, the Keras download, or the bundled sample)
- `corruption`: the three corruption processes, and batches with a fresh corruption each
- `metrics`: MSE, PSNR and SSIM over a test set
- `plotting`: the PNG figures
- `hyperparams`: `--name=value` overrides of a script's UPPER_CASE constants
- `outputs`: the output folder, and files written so they are never half-written
- `training`: fitting an autoencoder, with a clear stop on a NaN loss
- `script`: the start and end every script shares
"""

import os

# TensorFlow's start-up messages (CPU features, missing CUDA) say nothing a reader needs here.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
