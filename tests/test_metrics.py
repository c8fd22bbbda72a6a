from common.metrics import (
    frechet_distance,
    image_quality,
    mse_per_image,
    psnr_per_image,
    roc_auc,
    roc_curve,
    ssim_per_image,
)

import numpy as np
import pytest
from scipy.stats import mannwhitneyu
from skimage.metrics import mean_squared_error, peak_signal_noise_ratio, structural_similarity


@pytest.fixture
def pair(sample_arrays):
    rng = np.random.default_rng(0)
    clean = sample_arrays["x_test"][:40].astype(np.float32) / 255
    noisy = np.clip(clean + rng.normal(0, 0.2, clean.shape), 0, 1).astype(np.float32)
    return clean, noisy


def test_per_image_figures_match_scikit_image(pair):
    clean, noisy = pair
    mse, psnr, ssim = (
        mse_per_image(clean, noisy),
        psnr_per_image(clean, noisy),
        ssim_per_image(clean, noisy),
    )
    for i in range(len(clean)):
        c, n = clean[i].astype(np.float64), noisy[i].astype(np.float64)
        assert mse[i] == pytest.approx(mean_squared_error(c, n), rel=1e-9)
        assert psnr[i] == pytest.approx(peak_signal_noise_ratio(c, n, data_range=1.0), rel=1e-9)
        assert ssim[i] == pytest.approx(structural_similarity(c, n, data_range=1.0), rel=1e-9)
    # a stack in pieces: the same
    np.testing.assert_array_equal(ssim_per_image(clean, noisy, chunk=7), ssim)


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


@pytest.mark.parametrize("ties", [False, True])
def test_roc_auc_is_scipys_mann_whitney_u_over_the_number_of_pairs(ties):
    rng = np.random.default_rng(3)
    normal, anomalies = rng.normal(0, 1, 700), rng.normal(0.8, 1.5, 300)
    if ties:  # scores rounded to a few values: many ties, within and across the two groups
        normal, anomalies = np.round(normal), np.round(anomalies)
    u = mannwhitneyu(anomalies, normal).statistic
    assert roc_auc(normal, anomalies) == pytest.approx(
        u / (len(normal) * len(anomalies)), abs=1e-12
    )
    # and the definition itself, every pair counted: anomaly higher 1, tie 1/2
    pairs = (anomalies[:, None] > normal[None, :]) + 0.5 * (anomalies[:, None] == normal[None, :])
    assert roc_auc(normal, anomalies) == pytest.approx(pairs.mean(), abs=1e-12)


def test_roc_auc_of_separated_reversed_and_identical_scores():
    assert roc_auc([1, 2, 3], [4, 5]) == 1.0
    assert roc_auc([4, 5], [1, 2, 3]) == 0.0
    assert roc_auc([2, 2, 2], [2, 2]) == 0.5
    with pytest.raises(ValueError, match="at least one"):
        roc_auc([], [1.0])


@pytest.mark.parametrize("ties", [False, True])
def test_roc_curve_counts_flagged_scores_and_its_area_is_the_auc(ties):
    rng = np.random.default_rng(4)
    normal, anomalies = rng.normal(0, 1, 400), rng.normal(1, 1, 250)
    if ties:
        normal, anomalies = np.round(normal, 1), np.round(anomalies, 1)
    fpr, tpr, thresholds = roc_curve(normal, anomalies)
    assert (fpr[0], tpr[0], fpr[-1], tpr[-1]) == (0, 0, 1, 1)
    assert (
        np.all(np.diff(fpr) >= 0) and np.all(np.diff(tpr) >= 0) and np.all(np.diff(thresholds) < 0)
    )
    for k in rng.choice(np.arange(1, len(thresholds)), 30):
        assert fpr[k] == np.mean(normal >= thresholds[k]) and tpr[k] == np.mean(
            anomalies >= thresholds[k]
        )
    # trapezoids: a tie is a diagonal step, worth 1/2
    area = np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2)
    u = mannwhitneyu(anomalies, normal).statistic
    assert area == pytest.approx(u / (len(normal) * len(anomalies)), abs=1e-12)


def test_the_frechet_distance_against_numpy():
    rng = np.random.default_rng(0)
    a = rng.standard_normal((500, 4)) @ rng.standard_normal((4, 4))
    b = rng.standard_normal((400, 4)) * [1, 2, 0.5, 1] + [0.3, 0, -1, 2]
    mean_gap = a.mean(0) - b.mean(0)
    c_a = np.cov(a.T)
    c_b = np.cov(b.T)
    # trace((C_a C_b)^(1/2)): the sum of the square roots of the eigenvalues of C_a C_b, real, >= 0
    root_trace = np.sqrt(np.linalg.eigvals(c_a @ c_b).real.clip(0)).sum()
    reference = mean_gap @ mean_gap + np.trace(c_a) + np.trace(c_b) - 2 * root_trace
    assert frechet_distance(a, b) == pytest.approx(reference, rel=1e-6)
    assert frechet_distance(a, a) == pytest.approx(0, abs=1e-6)
    # two normals, diagonal covariances: |m_a - m_b|^2 + sum (s_a - s_b)^2, for many draws
    x = rng.standard_normal((200_000, 2)) * [1, 3]
    y = rng.standard_normal((200_000, 2)) * [2, 3] + [1, 0]
    assert frechet_distance(x, y) == pytest.approx(1 + 1, abs=0.05)
