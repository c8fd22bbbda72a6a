"""Chapter 05, stacked denoising autoencoders for a classifier: the chapter's models against NumPy
references, the script end to end on the bundled sample with tiny settings, its settings following
the number of images, and a run resumed after Ctrl-C."""

import json

from common import training
from common.corruption import Corrupt
from common.errors import SettingError, TrainingError
from common.labels import balanced_subset, balanced_subset_problem
from common.stages import Stages

import keras
import numpy as np
import pytest

from conftest import SAMPLE, load_script

chapter = load_script("05_stacked_autoencoder")  # its functions, read without running it

PNG = b"\x89PNG\r\n\x1a\n"
FIGURES = ["filters.png", "few_labels.png", "pretraining_loss.png", "classification_error.png"]
TRAIN, VALIDATION = 1200, 200
TINY = [
    f"--data={SAMPLE}",
    f"--train_limit={TRAIN}",
    f"--validation_size={VALIDATION}",
    "--hidden_units=(64,32,16)",
    "--pretrain_epochs=1",
    "--pretrain_batch_size=50",
    "--epochs=3",
    "--patience_epochs=2",
    "--few_labels=(20,)",
    "--few_label_steps=20",
    "--few_label_probe_steps=10",
    "--few_label_draws=2",
    "--batch_size=20",
    "--dropout=0.1",
    "--input_dropout=0.1",
]


def test_balanced_subset_takes_as_many_of_each_digit():
    labels = np.repeat(np.arange(10), 30)[np.random.default_rng(1).permutation(300)]
    chosen = balanced_subset(labels, 50, seed=3)
    assert len(chosen) == len(set(chosen)) == 50
    assert np.bincount(labels[chosen], minlength=10).tolist() == [5] * 10
    # the same draw for the same seed
    assert np.array_equal(chosen, balanced_subset(labels, 50, seed=3))
    assert not np.array_equal(chosen, balanced_subset(labels, 50, seed=4))
    with pytest.raises(SettingError, match="multiple of 10"):
        balanced_subset(labels, 55, seed=0)
    with pytest.raises(SettingError, match="more than the 300"):
        balanced_subset(labels, 400, seed=0)


def test_a_balanced_subset_that_cannot_be_drawn_says_why():
    labels = np.repeat(np.arange(10), 30)
    labels[:25] = 1  # class 0 keeps 5 examples
    assert balanced_subset_problem(labels, 50) is None
    assert "multiple of 10" in balanced_subset_problem(labels, 25)
    assert "more than the 300 labelled images" in balanced_subset_problem(labels, 1000)
    assert (
        balanced_subset_problem(labels, 100)
        == "10 of each class are needed, and class 0 has only 5"
    )
    assert "multiple of 3" in balanced_subset_problem(labels % 3, 100, classes=3)
    with pytest.raises(SettingError, match="class 0 has only 5"):
        balanced_subset(labels, 100, seed=0)


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

    return [layer(784, 20, "relu", "sigmoid"), layer(20, 8, "relu", "relu")]


def test_one_pretrained_layer_learns_to_rebuild_its_input():
    x = np.random.default_rng(0).random((64, 12)).astype(np.float32)
    from common.corruption import Corruption

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
    upper = chapter.pretrain_layer(
        x, 2, None, pixels=False, epochs=1, batch_size=16, learning_rate=1e-3, seed=0
    )
    assert upper.activation == "relu" and upper.decoder_activation == "relu"


def test_classifier_starts_from_the_pretrained_encoders_or_from_random_weights():
    stack = tiny_stack(np.random.default_rng(0))[:2]
    pretrained = chapter.build_classifier((20, 8), stack, dropout=0.5, input_dropout=0.2, name="p")
    fresh = chapter.build_classifier((20, 8), None, dropout=0.5, input_dropout=0.2, name="f")
    assert pretrained.output_shape == fresh.output_shape == (None, 10)
    for k, layer in enumerate(stack):
        assert np.array_equal(
            pretrained.get_layer(f"hidden_{k + 1}").get_weights()[0], layer.encoder[0]
        )
        assert not np.array_equal(
            fresh.get_layer(f"hidden_{k + 1}").get_weights()[0], layer.encoder[0]
        )
    with pytest.raises(SettingError, match="do not match"):
        chapter.build_classifier((20, 9), stack, dropout=0.0, input_dropout=0.0, name="bad")


def test_the_linear_probe_trains_the_softmax_layer_alone_then_every_layer():
    stack = tiny_stack(np.random.default_rng(0))[:2]
    rng = np.random.default_rng(1)
    x, y = rng.random((40, 28, 28)).astype(np.float32), np.arange(40) % 10

    def hidden_and_top(model):
        return [
            model.get_layer(n).get_weights()[0].copy()
            for n in ("hidden_1", "hidden_2", "class_scores")
        ]

    probed = chapter.build_classifier((20, 8), stack, dropout=0.0, input_dropout=0.0, name="probe")
    before = hidden_and_top(probed)
    losses, _ = chapter.fine_tune_fixed(
        probed, (x, y), steps=0, batch_size=10, learning_rate=1e-2, seed=0, probe_steps=10
    )
    after = hidden_and_top(probed)
    assert np.array_equal(after[0], before[0]) and np.array_equal(after[1], before[1])  # frozen
    assert not np.array_equal(after[2], before[2])  # the softmax layer learned
    assert len(losses) == 1  # one phase: the probe
    chapter.fine_tune_fixed(
        probed, (x, y), steps=10, batch_size=10, learning_rate=1e-2, seed=0, probe_steps=0
    )
    assert not np.array_equal(hidden_and_top(probed)[0], before[0])  # then every layer trains


def test_a_nan_loss_stops_fine_tuning_with_a_training_error():
    model = chapter.build_classifier((8,), None, dropout=0.0, input_dropout=0.0, name="nan")
    model.get_layer("class_scores").set_weights(
        [np.full((8, 10), np.nan, np.float32), np.zeros(10, np.float32)]
    )
    x, y = np.random.default_rng(0).random((20, 28, 28)).astype(np.float32), np.arange(20) % 10
    with pytest.raises(TrainingError, match="nan"):
        chapter.fine_tune_fixed(model, (x, y), steps=4, batch_size=10, learning_rate=1e-3, seed=0)
    with pytest.raises(TrainingError, match="nan"):
        chapter.fine_tune_classifier(
            model, (x, y), (x, y), epochs=2, batch_size=10, learning_rate=1e-3, patience=1, seed=0
        )


@pytest.mark.parametrize(
    "args, words",
    [
        (["--masking=1.5"], ["MASKING=1.5", "[0, 1)"]),
        (["--code_masking=1"], ["CODE_MASKING=1", "[0, 1)"]),
        (["--dropout=-0.1"], ["DROPOUT=-0.1", "[0, 1)"]),
        (["--few_label_probe_steps=-1"], ["FEW_LABEL_PROBE_STEPS=-1", "0 or more"]),
        (
            [f"--validation_size={TRAIN}"],
            [f"VALIDATION_SIZE={TRAIN}", "less than", f"at most {TRAIN - 1}", "None"],
        ),
        (["--few_labels=(0,)"], ["FEW_LABELS=(0,)", "each must be a whole number, 1 or more"]),
        (["--few_label_draws=0"], ["FEW_LABEL_DRAWS=0", "1 or more"]),
    ],
)
def test_bad_settings_are_refused_before_training(args, words, tmp_path):
    with pytest.raises(SettingError) as error:
        load_script("05_stacked_autoencoder").main([*TINY, *args, f"--output_dir={tmp_path}"])
    for word in words:
        assert word in str(error.value)


@pytest.mark.slow
def test_the_validation_set_and_the_few_label_sizes_follow_the_number_of_images(tmp_path, capsys):
    # VALIDATION_SIZE and FEW_LABELS at their defaults (None; 100 and 1,000), on 600 images
    metrics = load_script("05_stacked_autoencoder").main(
        [
            f"--data={SAMPLE}",
            "--train_limit=600",
            "--hidden_units=(16,8)",
            "--pretrain_epochs=1",
            "--epochs=1",
            "--few_label_draws=1",
            "--few_label_probe_steps=5",
            "--few_label_steps=5",
            f"--output_dir={tmp_path}",
        ]
    )
    printed = capsys.readouterr().out
    assert metrics["settings"]["VALIDATION_SIZE"] is None and tuple(
        metrics["settings"]["FEW_LABELS"]
    ) == (100, 1000)
    assert metrics["n_validation"] == 100 and metrics["n_train"] == 500  # a sixth of 600
    assert metrics["validation_indices"] == [500, 600]
    assert set(metrics["few_labels"]) == {"100"}  # the sizes the 500 labelled images can give
    assert "few labels: 1,000 skipped, more than the 500 labelled images" in printed
    assert "(05 needs" not in printed
    assert (tmp_path / "few_labels.png").exists()


def corruption_of(model):
    layers = [layer for layer in model.layers if isinstance(layer, Corrupt)]
    return (layers[0].kind, layers[0].low) if layers else None


def test_stacked_autoencoder_chapter(tmp_path, monkeypatch):
    trainings = []
    real_train = training.train_autoencoder

    def spy_train(model, inputs, targets, **kwargs):
        trainings.append((np.shape(inputs), corruption_of(model)))
        return real_train(model, inputs, targets, **kwargs)

    monkeypatch.setattr(training, "train_autoencoder", spy_train)
    script = load_script("05_stacked_autoencoder")
    metrics = script.main([*TINY, f"--output_dir={tmp_path}"])

    for name in FIGURES:
        path = tmp_path / name
        assert path.read_bytes()[:8] == PNG and path.stat().st_size > 2000, name
    # no temporary files left
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved["test_error_pct"] == pytest.approx(metrics["test_error_pct"])

    # greedy pretraining: each layer on the codes of the one below, the SDAE's corrupted (its own
    # level for the pixels, another for the codes above), the SAE's not; on the training images
    # alone, never on the validation images
    pixels = ("masking", saved["settings"]["MASKING"])
    codes = ("masking", saved["settings"]["CODE_MASKING"])
    assert pixels != codes
    labelled = TRAIN - VALIDATION
    assert trainings == [
        ((labelled, 784), pixels),
        ((labelled, 64), codes),
        ((labelled, 32), codes),
        ((labelled, 784), None),
        ((labelled, 64), None),
        ((labelled, 32), None),
    ]

    # who sees what: training, validation and test images are separate
    assert saved["n_test"] == 1000
    assert saved["n_train"] == labelled and saved["n_validation"] == VALIDATION
    assert saved["validation_indices"] == [labelled, TRAIN]

    from common.data import load_mnist

    data = load_mnist(SAMPLE, TRAIN)
    x_test, y_test = data.x_test, data.y_test

    # the classifiers: the saved SDAE one maps images to 10 class scores, scored as reported
    model = keras.models.load_model(tmp_path / "model.keras")
    assert model.input_shape == (None, 28, 28) and model.output_shape == (None, 10)
    scores = model.predict(x_test, batch_size=500, verbose=0)
    assert np.allclose(scores.sum(axis=1), 1, atol=1e-4)
    assert 100 * np.mean(scores.argmax(axis=1) != y_test) == pytest.approx(
        saved["test_error_pct"]["sdae"]
    )
    x_val, y_val = data.x_train[-VALIDATION:], data.y_train[-VALIDATION:]
    val_scores = model.predict(x_val, batch_size=500, verbose=0)
    assert 100 * np.mean(val_scores.argmax(axis=1) != y_val) == pytest.approx(
        saved["validation_error_pct"]["sdae"]
    )
    assert set(saved["test_error_pct"]) == {"sdae", "sae", "random"}
    for name, error in saved["test_error_pct"].items():
        assert 0 <= error < 70, name  # a few epochs on 1,000 labels: well above chance (90 %)
        assert 1 <= saved["kept_epoch"][name] <= 3
        p = error / 100  # the standard error of an error rate on 1,000 test images
        assert saved["test_error_standard_error_pct"][name] == pytest.approx(
            100 * np.sqrt(p * (1 - p) / 1000)
        )

    # few labels: two different balanced draws from the training images only, never from validation
    # or test; the figures are the means over the draws, for the SDAE, the SAE and random weights
    assert set(saved["few_labels"]) == {"20"}
    for n, result in saved["few_labels"].items():
        assert len(result["indices"]) == 2 and result["indices"][0] != result["indices"][1]
        for chosen in result["indices"]:
            indices = np.array(chosen)
            assert len(set(indices)) == int(n) and indices.max() < labelled
            assert np.bincount(data.y_train[indices], minlength=10).tolist() == [int(n) // 10] * 10
        for name in ("sdae", "sae", "random"):
            assert len(result["draws"][name]) == 2
            assert all(0 <= error <= 100 for error in result["draws"][name])
            assert result["mean"][name] == pytest.approx(np.mean(result["draws"][name]))
    assert saved["published_test_error_pct"]["sdae"] == 1.28
    assert saved["settings"]["HIDDEN_UNITS"] == [64, 32, 16]


@pytest.mark.slow
def test_stacked_chapter_resumes_after_ctrl_c_with_the_figures_of_an_uninterrupted_run(
    tmp_path, monkeypatch
):
    uninterrupted = load_script("05_stacked_autoencoder").main(
        [*TINY, f"--output_dir={tmp_path / 'whole'}"]
    )

    out = tmp_path / "resumed"
    real_run = Stages.run
    computed = []

    def ctrl_c_at_the_second_classifier(stages, name, *args, **kwargs):
        if name == "sae_classifier":
            raise KeyboardInterrupt
        return real_run(stages, name, *args, **kwargs)

    monkeypatch.setattr(Stages, "run", ctrl_c_at_the_second_classifier)
    with pytest.raises(KeyboardInterrupt):
        load_script("05_stacked_autoencoder").main([*TINY, f"--output_dir={out}"])
    assert (out / ".resume").is_dir() and not (out / "metrics.json").exists()
    from common.script import interrupted_message

    assert "resume" in interrupted_message()

    def record_what_is_trained(stages, name, compute, *args, **kwargs):
        if not (stages.folder / f"{name}.pkl").exists():
            computed.append(name)
        return real_run(stages, name, compute, *args, **kwargs)

    autoencoder_trainings = []
    real_train = training.train_autoencoder
    monkeypatch.setattr(Stages, "run", record_what_is_trained)
    monkeypatch.setattr(
        training,
        "train_autoencoder",
        lambda *a, **k: autoencoder_trainings.append(1) or real_train(*a, **k),
    )
    resumed = load_script("05_stacked_autoencoder").main([*TINY, f"--output_dir={out}"])
    # the six pretrained layers, the few-label fine-tunings and the SDAE classifier were loaded
    assert autoencoder_trainings == []
    assert computed == ["sae_classifier", "random_classifier"]
    assert not (out / ".resume").exists()  # the backup is removed once the results are saved
    # the same figures as the uninterrupted run, to the printed precision
    for key in ("test_error_pct", "validation_error_pct", "kept_epoch", "few_labels"):
        assert resumed[key] == uninterrupted[key], key
