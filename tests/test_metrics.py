import numpy as np
import pytest
from skimage.metrics import mean_squared_error, peak_signal_noise_ratio, structural_similarity

from common.metrics import image_quality, mse_per_image, psnr_per_image, ssim_per_image


@pytest.fixture
def pair(sample_arrays):
    rng = np.random.default_rng(0)
    clean = sample_arrays["x_test"][:40].astype(np.float32) / 255
    noisy = np.clip(clean + rng.normal(0, 0.2, clean.shape), 0, 1).astype(np.float32)
    return clean, noisy


def test_per_image_figures_match_scikit_image(pair):
    clean, noisy = pair
    mse, psnr, ssim = mse_per_image(clean, noisy), psnr_per_image(clean, noisy), ssim_per_image(clean, noisy)
    for i in range(len(clean)):
        c, n = clean[i].astype(np.float64), noisy[i].astype(np.float64)
        assert mse[i] == pytest.approx(mean_squared_error(c, n), rel=1e-9)
        assert psnr[i] == pytest.approx(peak_signal_noise_ratio(c, n, data_range=1.0), rel=1e-9)
        assert ssim[i] == pytest.approx(structural_similarity(c, n, data_range=1.0), rel=1e-9)


def test_averages_over_images_and_accepts_flat_images(pair):
    clean, noisy = pair
    q = image_quality(clean, noisy.reshape(len(noisy), 784))
    assert q["psnr_db"] == pytest.approx(
        np.mean([peak_signal_noise_ratio(c, n, data_range=1.0) for c, n in zip(clean, noisy)])
    )
    assert q["mse"] == pytest.approx(np.mean((clean.astype(np.float64) - noisy) ** 2))
    # the mean of per-image PSNRs is not the PSNR of the mean MSE
    assert q["psnr_db"] != pytest.approx(10 * np.log10(1 / q["mse"]), abs=1e-3)


def test_perfect_copy_is_capped_not_infinite(pair):
    clean, _ = pair
    q = image_quality(clean, clean)
    assert q["mse"] == 0 and q["psnr_db"] == 100.0 and q["ssim"] == pytest.approx(1.0)
