"""How large calibration_error gets from sampling noise alone: the reference a split's figure is read against.

A forecast that is exactly right still misses its levels on a finite split, and multi-bar targets that
overlap make it worse: a 4 h horizon at 5-minute bars spans 48 bars, so a test split of one trading day
holds only a handful of independent 4 h outcomes. The null here: every bar's log return i.i.d. N(0, 1),
the forecast its exact h-bar quantile, and the samples at the split's own rows and horizons, so the
overlap (and any gaps between rows) are the split's own. Coverage depends on a calibrated forecast only
through its probability integral transforms, so the Gaussian choice is a convenience: on the synthetic
market the oracle's calibration_error over windows of a given size follows this null (README,
"Forecast quality").
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
from scipy.stats import norm

from migt_train.evaluation.metrics import level_key

# Draws of the null: enough for its median and 95th percentile to two significant figures.
DRAWS = 400
# Draws per chunk are capped so that one chunk holds about this many simulated target values.
_CHUNK_VALUES = 5_000_000


def null_calibration_errors(
    rows: np.ndarray, horizons: Sequence[int], levels: Sequence[float], draws: int = DRAWS, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """rows (N,) bar index of each sample, horizons in bars -> (calibration_error (draws,), pooled
    coverage (draws, Q)) of an exactly calibrated forecast, computed as quantile_metrics does: mean over
    horizons of mean over levels of |coverage - tau|; the pooled coverage is over all horizons."""
    rows = np.asarray(rows, dtype=np.int64)
    horizons = np.asarray(horizons, dtype=np.int64)
    tau = np.asarray(levels, dtype=np.float64)
    start = rows - rows.min()
    span = int(start.max() + horizons.max())
    z = norm.ppf(tau)
    rng = np.random.default_rng(seed)
    chunk = max(1, min(draws, _CHUNK_VALUES // max(1, span)))
    errors, pooled = [], []
    for first in range(0, draws, chunk):
        d = min(chunk, draws - first)
        path = np.zeros((d, span + 1))
        np.cumsum(rng.standard_normal((d, span)), axis=1, out=path[:, 1:])
        err = np.zeros(d)
        cov_sum = np.zeros((d, len(tau)))
        for h in horizons:
            y = (path[:, start + h] - path[:, start]) / np.sqrt(h)  # (d, N), N(0, 1) each
            cov = np.stack([(y <= zq).mean(axis=1) for zq in z], axis=1)  # (d, Q)
            err += np.abs(cov - tau).mean(axis=1)
            cov_sum += cov
        errors.append(err / len(horizons))
        pooled.append(cov_sum / len(horizons))
    return np.concatenate(errors), np.concatenate(pooled)


def calibration_noise(
    observed: float, rows: np.ndarray, horizons: Sequence[int], levels: Sequence[float], draws: int = DRAWS, seed: int = 0
) -> dict[str, Any]:
    """metrics.json "calibration_noise": the null's median and 95th percentile of calibration_error on
    these rows, and p_value = the share of exactly calibrated draws scoring at least `observed`
    ((1 + count) / (1 + draws)); a small p_value is miscalibration beyond noise. coverage_band95 per
    level: the central 95% of the pooled coverage under the null (the band drawn in calibration.png)."""
    errors, pooled = null_calibration_errors(rows, horizons, levels, draws, seed)
    lo, hi = np.quantile(pooled, [0.025, 0.975], axis=0)
    return {
        "null": "exactly calibrated forecast of i.i.d. bar returns at the split's rows and horizons",
        "draws": int(draws),
        "n_samples": int(len(rows)),
        "median": float(np.median(errors)),
        "p95": float(np.quantile(errors, 0.95)),
        "p_value": float((1 + np.sum(errors >= observed - 1e-12)) / (1 + draws)),
        "coverage_band95": {level_key(t): [float(a), float(b)] for t, a, b in zip(levels, lo, hi)},
    }


def describe(observed: float, noise: dict[str, Any]) -> str:
    """One log line: the observed calibration_error beside what noise alone gives on the same rows."""
    verdict = "beyond noise (p < 0.05)" if noise["p_value"] < 0.05 else "within noise"
    return (
        f"test calibration error {observed:.4f}: an exactly calibrated forecast on these {noise['n_samples']} samples "
        f"scores {noise['median']:.4f} (median), {noise['p95']:.4f} (95th percentile); p = {noise['p_value']:.3f}, {verdict}"
    )
