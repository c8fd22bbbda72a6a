"""
Title: How much generated digits look like MNIST's, by a classifier of our own
Description: Train one convolutional digit classifier on the full MNIST (independent of the
    chapters' own), then measure saved samples with it: the Frechet distance of their features to
    the test digits', the share named with confidence of at least 0.9, and how often each digit is
    drawn; beside them, real training digits (the floor) and, where given, chapter 08's VAE.
Run: python benchmarks/measure_samples.py outputs/11_denoising_diffusion/samples.npz
         [--vae=outputs/08_variational_autoencoder/decoder.keras] [--epochs=6] [--classifier=...]
"""

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the project's root, for common/

from common.data import load_data
from common.devices import set_random_seed
from common.metrics import frechet_distance

import keras
import numpy as np
from keras import layers


def trained_classifier(epochs: int, data) -> keras.Model:
    """A small VGG-like network, trained with light shifts of the digits: about 99.4 % on test."""
    image = keras.Input((28, 28))
    h = layers.Reshape((28, 28, 1))(image)
    h = layers.RandomTranslation(0.1, 0.1, fill_mode="constant")(h)
    for channels in (32, 64):
        h = layers.Conv2D(channels, 3, padding="same", activation="relu")(h)
        h = layers.Conv2D(channels, 3, padding="same", activation="relu")(h)
        h = layers.MaxPooling2D()(h)
    h = layers.Flatten()(h)
    h = layers.Dropout(0.3)(h)
    h = layers.Dense(128, activation="relu", name="features")(h)
    model = keras.Model(image, layers.Dense(10, activation="softmax")(h))
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(data.x_train, data.y_train, batch_size=128, epochs=epochs, verbose=2)
    return model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("Run:")[0])
    parser.add_argument("samples", help="an .npz holding `images`, N x 28 x 28 in [0, 1]")
    parser.add_argument("--vae", help="chapter 08's decoder.keras: as many of its samples beside")
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--classifier",
        default="outputs/measure_samples/classifier.keras",
        help="the classifier, trained and saved here the first time, loaded afterwards",
    )
    args = parser.parse_args()
    started = time.perf_counter()
    set_random_seed(args.seed)
    data = load_data(None, "mnist", None, 28)
    saved = Path(args.classifier)
    if saved.is_file():
        model = keras.models.load_model(saved)
    else:
        model = trained_classifier(args.epochs, data)
        saved.parent.mkdir(parents=True, exist_ok=True)
        model.save(saved)
    features = keras.Model(model.input, model.get_layer("features").output)
    accuracy = float(np.mean(model.predict(data.x_test, verbose=0).argmax(1) == data.y_test))
    print(f"classifier: test accuracy {accuracy:.4f}")
    with np.load(args.samples) as f:
        samples = f["images"].astype(np.float32)
    n = len(samples)
    sets = {"real training digits": data.x_train[:n], "samples": samples}
    if args.vae:
        decoder = keras.models.load_model(args.vae)
        rng = np.random.default_rng(args.seed)
        codes = rng.standard_normal((n, decoder.input_shape[-1])).astype(np.float32)
        sets["VAE (08)"] = decoder.predict(codes, batch_size=1000, verbose=0)
    test_features = features.predict(data.x_test, batch_size=1000, verbose=0)
    results = {}
    for name, images in sets.items():
        probabilities = model.predict(images, batch_size=1000, verbose=0)
        shares = np.bincount(probabilities.argmax(1), minlength=10) / len(images)
        results[name] = {
            "frechet_distance": frechet_distance(
                features.predict(images, batch_size=1000, verbose=0), test_features
            ),
            "confident": float(np.mean(probabilities.max(1) >= 0.9)),
            "class_shares": shares.tolist(),
        }
        r = results[name]
        print(
            f"{name:<22} distance {r['frechet_distance']:8.2f}   confident {r['confident']:6.1%}"
            f"   classes {min(shares):.1%} to {max(shares):.1%}"
        )
    summary = {"samples": args.samples, "n": n, "classifier_test_accuracy": accuracy}
    summary |= {"results": results, "seconds": time.perf_counter() - started}
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
