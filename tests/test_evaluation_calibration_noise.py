"""calibration_noise: the calibration_error an exactly calibrated forecast gets on a split's own rows."""

import numpy as np
import pytest
import torch
from scipy.stats import binom, norm

from migt_train.evaluation.calibration_noise import calibration_noise, describe, null_calibration_errors
from migt_train.evaluation.metrics import quantile_metrics


def test_one_bar_one_level_is_the_binomial():
    # h = 1, tau = 0.5: calibration_error = |B / n - 0.5| with B ~ Binomial(n, 0.5), exactly
    n = 100
    errors, _ = null_calibration_errors(np.arange(n), [1], [0.5], draws=4000, seed=3)
    support = np.arange(n + 1)
    dev, p = np.abs(support / n - 0.5), binom.pmf(support, n, 0.5)
    order = np.argsort(dev)
    cdf = np.cumsum(p[order])
    exact_p95 = dev[order][np.searchsorted(cdf, 0.95)]
    assert np.quantile(errors, 0.95) == pytest.approx(exact_p95, abs=0.011)
    assert errors.mean() == pytest.approx(float((dev * p).sum()), rel=0.05)


def test_overlap_is_what_makes_long_horizons_noisy():
    levels = [0.1, 0.5, 0.9]
    contiguous, _ = null_calibration_errors(np.arange(300), [24], levels, draws=600, seed=1)
    one_bar, _ = null_calibration_errors(np.arange(300), [1], levels, draws=600, seed=1)
    # rows 24 bars apart: the 24-bar targets no longer overlap, so the noise is the one-bar noise
    apart, _ = null_calibration_errors(np.arange(300) * 24, [24], levels, draws=600, seed=1)
    assert np.median(contiguous) > 2.5 * np.median(one_bar)
    assert np.median(apart) == pytest.approx(np.median(one_bar), rel=0.15)


def test_matches_an_exact_forecast_of_a_heteroscedastic_series():
    """Series with a known, strongly varying volatility and its exact h-bar quantiles, scored with
    quantile_metrics: its calibration_error over many independent splits follows the null."""
    rng = np.random.default_rng(7)
    levels, horizons, n = [0.05, 0.25, 0.5, 0.75, 0.95], [1, 4, 12], 240
    sigma = np.exp(np.sin(np.arange(n + 12) / 9.0))  # volatility moving 7x within the split
    var_cum = np.r_[0.0, np.cumsum(sigma**2)]
    rows = np.arange(n)
    scale = np.stack([np.sqrt(var_cum[rows + h + 1] - var_cum[rows + 1]) for h in horizons], axis=1)
    q = torch.as_tensor(scale[..., None] * norm.ppf(levels))
    observed = []
    for _ in range(300):
        r = np.r_[0.0, np.cumsum(sigma[1:] * rng.standard_normal(n + 11))]  # r[k] = returns of bars 1..k
        y = torch.as_tensor(np.stack([r[rows + h] - r[rows] for h in horizons], axis=1))
        observed.append(quantile_metrics(q, y, levels, ["a", "b", "c"])["calibration_error"])
    null, _ = null_calibration_errors(rows, horizons, levels, draws=600, seed=2)
    assert np.median(observed) == pytest.approx(np.median(null), rel=0.12)
    assert np.quantile(observed, 0.9) == pytest.approx(np.quantile(null, 0.9), rel=0.15)


def test_p_value_band_and_message():
    rows, horizons, levels = np.arange(500), [1, 6], [0.1, 0.5, 0.9]
    wild = calibration_noise(0.4, rows, horizons, levels, draws=200)
    assert wild["p_value"] == pytest.approx(1 / 201) and "beyond noise" in describe(0.4, wild)
    exact = calibration_noise(0.0, rows, horizons, levels, draws=200)
    assert exact["p_value"] == 1.0 and "within noise" in describe(0.0, exact)
    assert exact["n_samples"] == 500 and exact["median"] < exact["p95"]
    for tau, (lo, hi) in exact["coverage_band95"].items():
        assert lo < float(tau) < hi
    # seeded: the same figures every time
    assert calibration_noise(0.02, rows, horizons, levels, draws=200) == calibration_noise(0.02, rows, horizons, levels, draws=200)


def test_many_draws_over_a_long_split_run_in_chunks():
    errors, pooled = null_calibration_errors(np.arange(20_000), [1, 48], [0.5], draws=600, seed=0)
    assert errors.shape == (600,) and pooled.shape == (600, 1)
    assert 0 < np.median(errors) < 0.01
