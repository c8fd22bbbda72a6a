"""Chapter 11, denoising diffusion: end to end on the bundled sample with tiny settings, the saved
denoiser read back, and its loss, sampler and Frechet distance against NumPy references."""

import json

from common import script

import keras
import numpy as np
import pytest

from conftest import SAMPLE, load_script

CHAPTER = "11_denoising_diffusion"
PNG = b"\x89PNG\r\n\x1a\n"
TINY = [
    f"--data={SAMPLE}",
    "--train_limit=300",
    "--epochs=1",
    "--batch_size=50",
    "--filters=(4,8,8)",
    "--samples=120",
    "--sampling_steps=3",
    "--step_study=(2,3)",
    "--step_study_samples=40",
    "--classifier_epochs=1",
]


def saved_vae_decoder(folder, code_dim=8):
    """A decoder as chapter 08 saves one (its own function, random weights) in `folder`."""
    decoder = load_script("08_variational_autoencoder").build_decoder(code_dim, (16,), 28)
    folder.mkdir()
    decoder.save(folder / "decoder.keras")
    return folder


def test_11_end_to_end_on_the_sample(tmp_path):
    vae_dir = saved_vae_decoder(tmp_path / "vae")
    out = tmp_path / "out"
    metrics = load_script(CHAPTER).main([*TINY, f"--vae_dir={vae_dir}", f"--output_dir={out}"])
    for name in ("levels.png", "sampling_path.png", "samples.png", "steps.png", "loss.png"):
        assert (out / name).read_bytes()[:8] == PNG and (out / name).stat().st_size > 2000, name
    assert not [p.name for p in out.iterdir() if p.name.startswith(".")]  # no backups left
    saved = json.loads((out / "metrics.json").read_text())
    assert (
        saved["n_train"] == 300
        and saved["n_measured"] == 120
        and "mnist_sample.npz" in saved["data"]
    )
    assert saved["vae"].startswith("chapter 08's saved decoder")
    assert list(saved["measures"]) == [
        "real training digits",
        "diffusion",
        "VAE (08)",
        "uniform noise",
    ]
    for name, figures in saved["measures"].items():
        assert figures["frechet_distance"] == pytest.approx(
            metrics["measures"][name]["frechet_distance"]
        )
        assert 0 <= figures["confident"] <= 1 and sum(figures["class_shares"]) == pytest.approx(1)
    assert set(saved["step_study"]["frechet_distance"]) == {"2", "3"}  # JSON keys
    # the study's 3 steps are the first 40 of the samples measured above
    with np.load(out / "samples.npz") as f:
        assert f.files == ["images"]
        images = f["images"]
    assert images.shape == (120, 28, 28) and images.dtype == np.float32
    assert 0 <= images.min() and images.max() <= 1

    # the saved denoiser: a noisy image and its level in, an image out; at a tiny level it
    # returns its input (c_skip = 1, c_out = 0), at a huge one no trace of it is left
    denoiser = keras.models.load_model(out / "models" / "denoiser.keras")
    clean = 2 * np.load(SAMPLE)["x_test"][:4].astype(np.float32) / 255 - 1
    noise = np.random.default_rng(0).standard_normal(clean.shape).astype(np.float32)
    for sigma in (0.001, 1.0, 500.0):
        guess = denoiser.predict([clean + sigma * noise, np.full(4, sigma, np.float32)], verbose=0)
        assert guess.shape == (4, 28, 28) and np.all(np.isfinite(guess))
        if sigma == 0.001:
            assert np.abs(guess - (clean + sigma * noise)).max() < 0.01
    classifier = keras.models.load_model(out / "models" / "classifier.keras")
    assert classifier.output_shape == (None, 10)


def test_11_trains_chapter_08s_vae_where_08_has_not_been_run(tmp_path):
    out = tmp_path / "out"
    argv = [*TINY, "--vae_epochs=1", f"--vae_dir={tmp_path / 'nowhere'}", f"--output_dir={out}"]
    metrics = load_script(CHAPTER).main(argv)
    assert metrics["vae"].startswith("chapter 08's VAE trained here for 1 epochs")
    assert np.isfinite(metrics["measures"]["VAE (08)"]["frechet_distance"])


# -- the pieces, against references that do not use the chapter's code --


def tiny_networks(chapter):
    unet = chapter.build_unet((2, 4, 4), 28)
    return unet, chapter.build_denoiser(unet, 28)


def test_the_denoiser_and_its_loss_against_numpy():
    chapter = load_script(CHAPTER)
    keras.utils.set_random_seed(1)
    unet, denoiser = tiny_networks(chapter)
    rng = np.random.default_rng(0)
    clean = rng.uniform(-1, 1, (3, 28, 28)).astype(np.float32)
    noise = rng.standard_normal((3, 28, 28)).astype(np.float32)
    sigma = np.array([0.01, 1.0, 50.0], np.float32)
    tensors = [keras.ops.convert_to_tensor(v) for v in (clean, sigma, noise)]
    loss = keras.ops.convert_to_numpy(chapter.denoising_loss(denoiser, *tensors))

    # Karras et al. (2022), Table 1 and eq. 8, in NumPy around the U-Net F alone, with sigma_data
    # 0.5
    s = sigma.astype(np.float64)[:, None, None]
    x = clean + s * noise
    c_skip = 0.25 / (s**2 + 0.25)
    c_out = s * 0.5 / np.sqrt(s**2 + 0.25)
    c_in = 1 / np.sqrt(s**2 + 0.25)
    f = unet.predict(
        [(c_in * x)[..., None].astype(np.float32), np.log(sigma)[:, None] / 4], verbose=0
    )
    guess = c_skip * x + c_out * f[..., 0]
    assert denoiser.predict([x.astype(np.float32), sigma], verbose=0) == pytest.approx(
        guess, abs=1e-4
    )
    weight = (sigma**2 + 0.25) / (sigma * 0.5) ** 2
    assert loss == pytest.approx(weight * np.mean((guess - clean) ** 2, axis=(1, 2)), rel=1e-4)
    # the same loss: F's unweighted error from its effective target (y - c_skip x) / c_out (eq. 7)
    target = (clean - c_skip * x) / c_out
    assert loss == pytest.approx(np.mean((f[..., 0] - target) ** 2, axis=(1, 2)), rel=1e-3)


def test_the_training_levels_are_log_normal_and_drawn_afresh():
    chapter = load_script(CHAPTER)
    layer = chapter.NoiseLevels(seed=0)
    clean = np.zeros((20_000, 4, 4), np.float32)
    sigma, noise = (keras.ops.convert_to_numpy(v) for v in layer(clean))
    assert np.log(sigma).mean() == pytest.approx(-1.2, abs=0.03)
    assert np.log(sigma).std() == pytest.approx(1.2, abs=0.03)
    assert noise.shape == clean.shape and noise.std() == pytest.approx(1, abs=0.01)
    again = keras.ops.convert_to_numpy(layer(clean)[0])
    assert not np.allclose(again, sigma)


def gaussian_data_denoiser(spread):
    """The best denoiser of data y ~ N(0, spread^2 I): D(x; sigma) = x spread^2 / (spread^2 +
    sigma^2)."""
    return lambda x, sigma: x * spread**2 / (spread**2 + sigma**2)


def test_the_sampler_visits_the_levels_of_karras_eq_5():
    chapter = load_script(CHAPTER)
    start = np.zeros((1, 2))
    _, path = chapter.draw(gaussian_data_denoiser(0.5), start, 6, keep_path=True)
    i = np.arange(6)
    reference = (80 ** (1 / 7) + i / 5 * (0.002 ** (1 / 7) - 80 ** (1 / 7))) ** 7  # rho = 7
    assert [sigma for sigma, _, _ in path] == pytest.approx(reference)
    _, path = chapter.draw(gaussian_data_denoiser(0.5), start, 1, keep_path=True)
    assert [sigma for sigma, _, _ in path] == pytest.approx([80])  # one step, from 80 to 0


def test_one_heun_step_against_numpy():
    chapter = load_script(CHAPTER)
    denoise = gaussian_data_denoiser(0.5)
    start = np.random.default_rng(0).standard_normal((5, 3, 3))
    x, path = chapter.draw(denoise, start, 2, keep_path=True)
    s0, s1 = 80, 0.002  # two steps: 80 to 0.002 by Heun's method, then to 0 by Euler's
    x0 = start * s0
    d0 = (x0 - denoise(x0, s0)) / s0
    euler = x0 + (s1 - s0) * d0
    d1 = (euler - denoise(euler, s1)) / s1
    heun = x0 + (s1 - s0) * (d0 + d1) / 2
    assert (
        path[0][0] == s0
        and path[0][1] == pytest.approx(x0[0])
        and path[1][1] == pytest.approx(heun[0])
    )
    last = heun - s1 * (heun - denoise(heun, s1)) / s1  # the last step, to 0: Euler's, one call
    assert x == pytest.approx(last)


def test_the_sampler_follows_the_probability_flow_of_gaussian_data():
    # for y ~ N(0, s^2 I) the flow from sigma_max to 0 is exact: x(0) = x(80) s / sqrt(s^2 + 80^2)
    chapter = load_script(CHAPTER)
    start = np.random.default_rng(0).standard_normal((200, 2))
    exact = start * 80 * 0.5 / np.sqrt(0.25 + 80**2)
    denoise = gaussian_data_denoiser(0.5)
    errors = [np.abs(chapter.draw(denoise, start, n) - exact).max() for n in (10, 20, 40, 80)]
    # Heun's method is of second order: each doubling of the steps divides the error by about 4
    assert all(3 < before / after < 6 for before, after in zip(errors, errors[1:]))
    assert errors[-1] < 0.01


@pytest.mark.parametrize(
    "args, line",
    [
        (["--sigma_max=-1"], "error: SIGMA_MAX=-1.0: must be a finite number above 0"),
        (["--sampling_steps=0"], "error: SAMPLING_STEPS=0: must be a whole number, 1 or more"),
        (
            ["--step_study=(5,0)"],
            "error: STEP_STUDY=(5, 0): each must be a whole number, 1 or more",
        ),
        (["--sigma_min=100"], "error: SIGMA_MIN=100.0: must be below SIGMA_MAX=80.0"),
    ],
)
def test_bad_settings_are_one_line_naming_the_setting(args, line, tmp_path, capsys):
    with pytest.raises(SystemExit) as caught:
        script.run(lambda: load_script(CHAPTER).main([*args, f"--output_dir={tmp_path}"]))
    assert caught.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [line]


@pytest.mark.slow
def test_ctrl_c_then_the_same_command_resumes_with_the_same_figures(tmp_path, monkeypatch, capsys):
    from common.stages import Stages

    argv = [*TINY, f"--vae_dir={saved_vae_decoder(tmp_path / 'vae')}"]
    whole = load_script(CHAPTER).main([*argv, f"--output_dir={tmp_path / 'whole'}"])
    real_run = Stages.run

    def interrupted(self, name, *args, **kwargs):
        if name == "samples":  # after the denoiser
            raise KeyboardInterrupt
        return real_run(self, name, *args, **kwargs)

    monkeypatch.setattr(Stages, "run", interrupted)
    with pytest.raises(KeyboardInterrupt):
        load_script(CHAPTER).main([*argv, f"--output_dir={tmp_path / 'cut'}"])
    monkeypatch.setattr(Stages, "run", real_run)
    capsys.readouterr()
    resumed = load_script(CHAPTER).main([*argv, f"--output_dir={tmp_path / 'cut'}"])
    assert "resuming" in capsys.readouterr().out
    for name, figures in whole["measures"].items():
        assert resumed["measures"][name]["frechet_distance"] == pytest.approx(
            figures["frechet_distance"]
        )
    assert resumed["loss_history"] == pytest.approx(whole["loss_history"])
