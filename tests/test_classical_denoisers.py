"""The classical denoisers against scikit-image and SciPy called directly, and their tuning."""

from common import classical_denoisers as baselines
from common.metrics import psnr_per_image

import numpy as np
import pytest
from scipy import ndimage
from skimage.restoration import denoise_nl_means, denoise_tv_chambolle


@pytest.fixture
def pair(sample_arrays):
    clean = sample_arrays["x_test"][:60].astype(np.float32) / 255
    noisy = np.clip(clean + np.random.default_rng(1).normal(0, 0.3, clean.shape), 0, 1).astype(
        np.float32
    )
    return noisy, clean


def test_each_denoiser_works_image_by_image_like_the_library_call(pair):
    noisy, _ = pair
    for i in (0, 7):
        image = noisy[i]
        np.testing.assert_allclose(
            baselines.non_local_means(noisy, 0.2)[i],
            denoise_nl_means(image, h=0.2, patch_size=3, patch_distance=4, fast_mode=True),
            atol=1e-6,
        )
        np.testing.assert_allclose(
            baselines.total_variation(noisy, 0.1)[i],
            denoise_tv_chambolle(image, weight=0.1),
            atol=1e-5,
        )
        np.testing.assert_allclose(
            baselines.median(noisy, 3)[i],
            ndimage.median_filter(image, size=3, mode="constant"),
            atol=0,
        )
        np.testing.assert_allclose(
            baselines.gaussian_blur(noisy, 1.0)[i],
            ndimage.gaussian_filter(image, 1.0, mode="constant"),
            atol=1e-6,
        )


def test_tuning_picks_the_candidate_with_the_best_mean_psnr(pair):
    noisy, clean = pair
    for denoiser in baselines.DENOISERS:
        tuned = baselines.tune(denoiser, noisy, clean)
        scores = {
            v: psnr_per_image(clean, np.clip(denoiser.apply(noisy, v), 0, 1)).mean()
            for v in denoiser.candidates
        }
        assert tuned.value == max(scores, key=scores.get)
        assert tuned.held_out_psnr_db == pytest.approx(scores[tuned.value])
        # each one helps on this noise
        assert tuned.held_out_psnr_db > psnr_per_image(clean, noisy).mean()
