"""Chapter 06, the deep autoencoder: its unrolled network and measures against NumPy references, the
PCA baseline against NumPy's SVD, the script end to end on the bundled sample with tiny settings
(what each pretrained layer was trained on, the saved model scored as reported), a 2-number code
drawn as a map, images without labels, a run resumed after Ctrl-C, and the weight decay."""

import json

from common import training
from common.corruption import Corrupt, Corruption
from common.data import load_mnist
from common.errors import SettingError
from common.pca import pca, pca_reconstruct
from common.stages import Stages

import keras
import numpy as np
import pytest

from conftest import SAMPLE, load_script

chapter = load_script("06_deep_autoencoder")  # its functions, read without running it

PNG = b"\x89PNG\r\n\x1a\n"
TRAIN = 1000
TINY = [
    f"--data={SAMPLE}",
    f"--train_limit={TRAIN}",
    "--hidden_units=(64,32,16)",
    "--code_dim=6",
    "--pretrain_epochs=1",
    "--pretrain_batch_size=50",
    "--epochs=3",
    "--batch_size=50",
]


def test_pca_reconstruction_matches_numpy_svd(sample_arrays):
    x = sample_arrays["x_train"][:500].astype(np.float32) / 255
    k = 12
    flat = x.reshape(len(x), -1).astype(np.float64)
    centred = flat - flat.mean(axis=0)
    _, singular, vt = np.linalg.svd(centred, full_matrices=False)
    reference = np.clip(centred @ vt[:k].T @ vt[:k] + flat.mean(axis=0), 0, 1)
    mean, components = pca(x, k)
    ours = pca_reconstruct(x, mean, components)
    assert ours.shape == x.shape and ours.dtype == np.float32
    assert np.allclose(ours.reshape(len(x), -1), reference, atol=1e-4)
    # unclipped, the squared error left over is the variance of the discarded directions
    unclipped = (centred @ components.T @ components + mean).reshape(x.shape)
    assert chapter.squared_error_per_image(x, unclipped) == pytest.approx(
        np.sum(singular[k:] ** 2) / len(x), rel=1e-3
    )
    assert chapter.squared_error_per_image(x, ours) <= chapter.squared_error_per_image(x, unclipped)


def test_squared_error_is_summed_over_pixels_and_averaged_over_images():
    a = np.zeros((4, 28, 28), np.float32)
    b = a.copy()
    b[0, :10, 0] = 1  # 10 pixels off by 1 in one image of four
    assert chapter.squared_error_per_image(a, b) == pytest.approx(10 / 4)


def tiny_stack(rng):
    def layer(n_in, n_out, activation, decoder_activation):
        return chapter.PretrainedLayer(
            encoder=[
                rng.normal(0, 0.1, (n_in, n_out)).astype(np.float32),
                rng.normal(0, 0.1, n_out).astype(np.float32),
            ],
            decoder=[
                rng.normal(0, 0.1, (n_out, n_in)).astype(np.float32),
                rng.normal(0, 0.1, n_in).astype(np.float32),
            ],
            activation=activation,
            decoder_activation=decoder_activation,
            history={"loss": [1.0]},
            seconds=0.0,
        )

    return [
        layer(784, 20, "relu", "sigmoid"),
        layer(20, 8, "relu", "relu"),
        layer(8, 3, "linear", "relu"),
    ]


def test_unrolled_autoencoder_runs_encoders_up_and_decoders_down():
    rng = np.random.default_rng(0)
    stack = tiny_stack(rng)
    x = rng.random((5, 28, 28)).astype(np.float32)
    relu = lambda v: np.maximum(v, 0)  # noqa: E731
    h = x.reshape(5, -1)
    h = relu(h @ stack[0].encoder[0] + stack[0].encoder[1])
    h = relu(h @ stack[1].encoder[0] + stack[1].encoder[1])
    code = h @ stack[2].encoder[0] + stack[2].encoder[1]
    h = relu(code @ stack[2].decoder[0] + stack[2].decoder[1])
    h = relu(h @ stack[1].decoder[0] + stack[1].decoder[1])
    out = 1 / (1 + np.exp(-(h @ stack[0].decoder[0] + stack[0].decoder[1])))
    model = chapter.build_deep_autoencoder(stack)
    assert model.output_shape == (None, 28, 28)
    assert np.allclose(model.predict(x, verbose=0).reshape(5, -1), out, atol=1e-5)
    assert np.allclose(chapter.encode(stack, x.reshape(5, -1)), code, atol=1e-5)


def test_one_pretrained_layer_learns_to_rebuild_its_input():
    x = np.random.default_rng(0).random((64, 12)).astype(np.float32)
    layer = chapter.pretrain_layer(
        x,
        6,
        Corruption("masking", 0.25),
        pixels=True,
        epochs=3,
        batch_size=16,
        learning_rate=1e-2,
        seed=0,
    )
    assert layer.units == 6 and layer.activation == "relu" and layer.decoder_activation == "sigmoid"
    assert [w.shape for w in layer.encoder + layer.decoder] == [(12, 6), (6,), (6, 12), (12,)]
    assert len(layer.history["loss"]) == 3 and layer.history["loss"][-1] < layer.history["loss"][0]
    code = chapter.pretrain_layer(
        x,
        2,
        None,
        pixels=False,
        linear_code=True,
        epochs=1,
        batch_size=16,
        learning_rate=1e-3,
        seed=0,
    )
    assert code.activation == "linear" and code.decoder_activation == "relu"


def test_weight_decay_shrinks_every_weight_by_the_decay_times_the_step_size():
    for decay, kind in ((0.5, keras.optimizers.AdamW), (0.0, keras.optimizers.Adam)):
        weights = keras.Variable(np.array([1.0, -2.0, 4.0], np.float32))
        optimizer = chapter.adam_cosine(0.1, total_steps=10, weight_decay=decay)
        assert type(optimizer) is kind
        # no gradient: only the decay moves them
        optimizer.apply_gradients([(np.zeros(3, np.float32), weights)])
        # the first step's size is the full 0.1
        expected = np.array([1.0, -2.0, 4.0]) * (1 - decay * 0.1)
        np.testing.assert_allclose(keras.ops.convert_to_numpy(weights), expected, rtol=1e-6)


@pytest.mark.parametrize(
    "args, words",
    [
        (["--masking=1.5"], ["MASKING=1.5", "[0, 1)"]),
        (["--code_masking=-0.1"], ["CODE_MASKING=-0.1", "[0, 1)"]),
        (["--weight_decay=-1"], ["WEIGHT_DECAY=-1", "0 or more"]),
        (["--code_dim=0"], ["CODE_DIM=0", "1 or more"]),
    ],
)
def test_bad_settings_are_refused_before_training(args, words, tmp_path):
    with pytest.raises(SettingError) as error:
        load_script("06_deep_autoencoder").main([*TINY, *args, f"--output_dir={tmp_path}"])
    for word in words:
        assert word in str(error.value)


def test_deep_autoencoder_chapter(tmp_path, monkeypatch):
    streams = []
    real_train = training.train_autoencoder

    def spy_train(model, inputs, targets, **kwargs):
        corruption = [
            (layer.kind, layer.low) for layer in model.layers if isinstance(layer, Corrupt)
        ]
        streams.append((np.shape(inputs), corruption[0] if corruption else None))
        # clean in and clean out: any corruption is the model's
        assert np.array_equal(inputs, targets)
        return real_train(model, inputs, targets, **kwargs)

    monkeypatch.setattr(training, "train_autoencoder", spy_train)
    metrics = load_script("06_deep_autoencoder").main([*TINY, f"--output_dir={tmp_path}"])

    for name in ("reconstructions.png", "pretraining_loss.png", "loss.png"):
        assert (tmp_path / name).read_bytes()[:8] == PNG and (
            tmp_path / name
        ).stat().st_size > 2000, name
    assert not (tmp_path / "codes.png").exists()  # a map only for a 2-number code
    # no temporary files left
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved["deep_ae_sq_error_per_image"] == pytest.approx(
        metrics["deep_ae_sq_error_per_image"]
    )

    # greedy pretraining: layer 1 on masked pixels, every layer above on the masked clean codes of
    # the one below, the code layer too; then the unrolled network, clean in and clean out
    pixels = ("masking", saved["settings"]["MASKING"])
    codes = ("masking", saved["settings"]["CODE_MASKING"])
    assert pixels != codes
    assert streams == [
        ((TRAIN, 784), pixels),
        ((TRAIN, 64), codes),
        ((TRAIN, 32), codes),
        ((TRAIN, 16), codes),
        ((TRAIN, 28, 28), None),
    ]
    assert [len(h) for h in saved["loss_history"]["pretraining"]] == [1, 1, 1, 1]
    assert len(saved["loss_history"]["fine_tuning"]["loss"]) == 3

    # the saved model: an image in, its reconstruction in [0, 1] out, scored as reported
    data = load_mnist(SAMPLE, TRAIN)
    model = keras.models.load_model(tmp_path / "model.keras")
    assert model.input_shape == model.output_shape == (None, 28, 28)
    assert model.get_layer("code").units == 6
    reconstruction = model.predict(data.x_test, batch_size=500, verbose=0)
    assert reconstruction.min() >= 0 and reconstruction.max() <= 1
    assert chapter.squared_error_per_image(data.x_test, reconstruction) == pytest.approx(
        saved["deep_ae_sq_error_per_image"], rel=1e-4
    )
    training_reconstruction = model.predict(data.x_train, batch_size=500, verbose=0)
    assert chapter.squared_error_per_image(data.x_train, training_reconstruction) == pytest.approx(
        saved["deep_ae_training_sq_error_per_image"], rel=1e-4
    )
    # predicting empty images
    blank = chapter.squared_error_per_image(data.x_test, np.zeros_like(data.x_test))
    assert 0 < saved["deep_ae_sq_error_per_image"] < blank
    # the PCA figure is common/pca.py's, fitted on the training images, with as many components as
    # the code
    mean, components = pca(data.x_train, 6)
    assert saved["pca_sq_error_per_image"] == pytest.approx(
        chapter.squared_error_per_image(
            data.x_test, pca_reconstruct(data.x_test, mean, components)
        ),
        rel=1e-5,
    )
    assert saved["n_train"] == TRAIN and saved["n_test"] == 1000
    assert saved["published_sq_error_per_image"]["pca"] == 13.87


@pytest.mark.slow
def test_a_two_number_code_is_drawn_as_a_map_and_images_without_labels_are_fine(
    tmp_path, sample_arrays
):
    x = sample_arrays["x_train"][:300]
    np.savez(tmp_path / "unlabelled.npz", x_train=x[:240], x_test=x[240:])
    out = tmp_path / "out"
    metrics = load_script("06_deep_autoencoder").main(
        [
            f"--data={tmp_path / 'unlabelled.npz'}",
            *TINY[2:3],
            "--code_dim=2",
            "--pretrain_epochs=1",
            "--epochs=1",
        ]
        + [f"--output_dir={out}"]
    )
    assert metrics["n_train"] == 240 and metrics["deep_ae_sq_error_per_image"] > 0
    for name in ("codes.png", "pca_codes.png", "model.keras"):
        assert (out / name).exists(), name


@pytest.mark.slow
def test_deep_chapter_resumes_after_ctrl_c_with_the_figures_of_an_uninterrupted_run(
    tmp_path, monkeypatch
):
    uninterrupted = load_script("06_deep_autoencoder").main(
        [*TINY, f"--output_dir={tmp_path / 'whole'}"]
    )
    out = tmp_path / "resumed"
    real_run = Stages.run

    def ctrl_c_at_the_fine_tuning(stages, name, *args, **kwargs):
        if name == "fine_tuning":
            raise KeyboardInterrupt
        return real_run(stages, name, *args, **kwargs)

    monkeypatch.setattr(Stages, "run", ctrl_c_at_the_fine_tuning)
    with pytest.raises(KeyboardInterrupt):
        load_script("06_deep_autoencoder").main([*TINY, f"--output_dir={out}"])
    assert (out / ".resume").is_dir() and not (out / "metrics.json").exists()

    computed = []

    def record_what_is_trained(stages, name, compute, *args, **kwargs):
        if not (stages.folder / f"{name}.pkl").exists():
            computed.append(name)
        return real_run(stages, name, compute, *args, **kwargs)

    monkeypatch.setattr(Stages, "run", record_what_is_trained)
    resumed = load_script("06_deep_autoencoder").main([*TINY, f"--output_dir={out}"])
    assert computed == ["fine_tuning"]  # the four pretrained layers were loaded, not trained again
    assert not (out / ".resume").exists()
    assert resumed["deep_ae_sq_error_per_image"] == pytest.approx(
        uninterrupted["deep_ae_sq_error_per_image"], abs=5e-3
    )
