"""HAR on Garman-Klass variance: the strongest simple forecaster of intraday volatility from the bars' range.

With u_t = GK_t / p[b_t] the bar's Garman-Klass variance over its time-of-day profile (train mean GK per bar
of day over the overall mean) and x_k(t) = log of the mean of u over the trailing window k (the bar, 1 h,
1 day, 1 week; volatility/realized.py), one least-squares regression per horizon h, on the training rows:

    log( mean_{j=1..h} u_{t+j} ) = c_h + sum_k b_hk x_k(t) + e

The forecast std of the h-bar log return is sigma_h(t) = sqrt(exp(fitted) * sum_{j=1..h} p[b_{t+j}]) (the
bars of day ahead are known) and its quantiles are sigma_h times the training quantiles of y_h / sigma_h,
so the scale of GK against squared returns, the log-normal bias and the fat tails all come from the data.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from migt_train.errors import MigtError
from migt_train.volatility.garch import tod_profile
from migt_train.volatility.realized import MIN_RATIO, WINDOW_MINUTES, WINDOW_NAMES, trailing_sums


def tod_variance_profile(var: np.ndarray, bar_in_day: np.ndarray, fit_bars: slice, bars_per_day: int) -> np.ndarray:
    """(bars_per_day,) mean variance per bar of day over the fit bars, relative to the overall mean (the GARCH
    anchor's profile rules: too few samples -> 1, floored)."""
    return tod_profile(np.asarray(var, dtype=np.float64)[fit_bars], np.asarray(bar_in_day, dtype=np.int64)[fit_bars],
                       bars_per_day, what="high/low (realised range variance)")


def har_regressors(u: np.ndarray, timestamps: np.ndarray, floor: float) -> np.ndarray:
    """(N,) profile-normalised GK variance -> (N, K) log trailing means over WINDOW_MINUTES, floored."""
    sums = trailing_sums(u, timestamps)
    counts = trailing_sums(np.ones(len(u)), timestamps)
    return np.log(np.maximum(sums / counts, floor))


def future_means(u: np.ndarray, horizons: Sequence[int]) -> np.ndarray:
    """(N, H) mean of u over the h bars after each row (NaN where the series ends first)."""
    c = np.concatenate([[0.0], np.cumsum(np.asarray(u, dtype=np.float64))])
    n = len(u)
    out = np.full((n, len(horizons)), np.nan)
    for j, h in enumerate(horizons):
        if h < n:
            out[: n - h, j] = (c[h + 1:] - c[1: n - h + 1]) / h
    return out


def profile_ahead(profile: np.ndarray, bar_in_day: np.ndarray, horizons: Sequence[int], rows: np.ndarray | None = None) -> np.ndarray:
    """(n, H) sum of the profile over the h bars after each row (the bars of day ahead are known; rows past
    the series end repeat its last bar of day)."""
    bid = np.asarray(bar_in_day, dtype=np.int64)
    rows = np.arange(len(bid)) if rows is None else np.asarray(rows, dtype=np.int64)
    ahead = np.minimum(rows[:, None] + 1 + np.arange(max(horizons)), len(bid) - 1)
    return np.cumsum(profile[bid[ahead]], axis=1)[:, np.asarray(horizons) - 1]


def least_squares(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """(n, K) regressors, (n,) target -> (K + 1,) [intercept, slopes] by least squares."""
    design = np.column_stack([np.ones(len(x)), x])
    coef, *_ = np.linalg.lstsq(design, y, rcond=None)
    return coef


@dataclass
class HARGK:
    profile: np.ndarray  # (bars_per_day,)
    coef: np.ndarray  # (H, K + 1): intercept, then one slope per window
    z: np.ndarray  # (H, Q) training quantiles of y_h / sigma_h
    r2: np.ndarray  # (H,) in-sample R^2 of the log-variance regressions
    x: np.ndarray  # (N, K) regressors of every row
    bar_in_day: np.ndarray  # (N,)
    horizons: list[int]

    @classmethod
    def fit(cls, gk: np.ndarray, timestamps: np.ndarray, bar_in_day: np.ndarray, targets: np.ndarray,
            train_rows: np.ndarray, fit_bars: slice, bars_per_day: int, horizons: Sequence[int],
            levels: Sequence[float]) -> "HARGK":
        """gk (N,) GK variance per bar; targets (N, H) h-bar log returns; train_rows: the training samples;
        fit_bars: the bars the training windows see (the profile's). Nothing from val or test is used."""
        train_rows = np.asarray(train_rows, dtype=np.int64)
        if len(train_rows) < 10 * (len(WINDOW_MINUTES) + 1):
            raise MigtError(f"data.splits.train: too few samples to fit the har_gk baseline ({len(train_rows)} rows)")
        bid = np.asarray(bar_in_day, dtype=np.int64)
        profile = tod_variance_profile(gk, bid, fit_bars, bars_per_day)
        u = np.asarray(gk, dtype=np.float64) / profile[bid]
        floor = MIN_RATIO * float(u[fit_bars].mean())
        x = har_regressors(u, timestamps, floor)
        future = np.log(np.maximum(future_means(u, horizons), floor))
        coef, r2 = [], []
        for j in range(len(horizons)):
            ok = train_rows[np.isfinite(future[train_rows, j])]
            c = least_squares(x[ok], future[ok, j])
            resid = future[ok, j] - c[0] - x[ok] @ c[1:]
            coef.append(c)
            r2.append(1.0 - float(resid.var()) / max(float(future[ok, j].var()), 1e-300))
        out = cls(profile, np.asarray(coef), np.zeros((len(horizons), len(levels))), np.asarray(r2), x, bid, list(horizons))
        y = np.asarray(targets, dtype=np.float64)[train_rows]
        z = y / out.horizon_std(train_rows)
        out.z = np.nanquantile(z, np.asarray(levels, dtype=np.float64), axis=0).T
        return out

    def horizon_std(self, rows: np.ndarray) -> np.ndarray:
        """(n, H) forecast std of each horizon's log return from the origin rows."""
        rows = np.asarray(rows, dtype=np.int64)
        prof_sum = profile_ahead(self.profile, self.bar_in_day, self.horizons, rows)
        log_mean = self.coef[:, 0] + self.x[rows] @ self.coef[:, 1:].T  # (n, H)
        return np.sqrt(np.exp(log_mean) * prof_sum)

    def quantiles(self, rows: np.ndarray) -> np.ndarray:
        """(n, H, Q) log-return quantiles."""
        return self.horizon_std(rows)[..., None] * self.z

    def report(self, horizon_names: Sequence[str]) -> dict:
        """JSON-ready fitted coefficients per horizon, for metrics.json."""
        return {"params": {name: {"intercept": float(c[0]), **{w: float(b) for w, b in zip(WINDOW_NAMES, c[1:])},
                                  "r2": float(r)} for name, c, r in zip(horizon_names, self.coef, self.r2)}}


@dataclass
class HARAnchor:
    """The volatility anchor's range correction: per horizon, least squares on the training rows of

        log(realised h-bar variance) = c + a log sigma_garch_h^2 + p log P_h + sum_k b_k x_k

    with P_h the time-of-day profile of the range summed over the h bars ahead and x_k the HAR regressors. It
    nests the GARCH anchor (a = 1) and HAR on the range (a = 0), so the anchored model starts from whichever
    mix the training bars support. Realised variance per bar: volatility/realized.bar_variance."""

    profile: np.ndarray  # (bars_per_day,)
    floor: float
    coef: np.ndarray  # (H, 3 + K): c, a, p, b_1..b_K

    @classmethod
    def fit(cls, bar_var: np.ndarray, timestamps: np.ndarray, bar_in_day: np.ndarray, sigma_garch: np.ndarray,
            train_rows: np.ndarray, fit_bars: slice, bars_per_day: int, horizons: Sequence[int]) -> "HARAnchor":
        bid = np.asarray(bar_in_day, dtype=np.int64)
        profile = tod_variance_profile(bar_var, bid, fit_bars, bars_per_day)
        floor = MIN_RATIO * float(np.mean(np.asarray(bar_var, dtype=np.float64)[fit_bars] / profile[bid[fit_bars]]))
        out = cls(profile, floor, np.zeros((len(horizons), 3 + len(WINDOW_MINUTES))))
        design = out._design(bar_var, timestamps, bid, sigma_garch, horizons)
        future = future_means(bar_var, horizons) * np.asarray(horizons, dtype=np.float64)
        rows = np.asarray(train_rows, dtype=np.int64)
        for j in range(len(horizons)):
            ok = rows[np.isfinite(future[rows, j])]
            y = np.log(np.maximum(future[ok, j], floor * horizons[j]))
            out.coef[j] = least_squares(design[j][ok], y)
        return out

    def _design(self, bar_var, timestamps, bar_in_day, sigma_garch, horizons) -> list[np.ndarray]:
        """Per horizon (N, 2 + K): log sigma_garch^2, log P_h, the HAR regressors."""
        x = har_regressors(np.asarray(bar_var, dtype=np.float64) / self.profile[bar_in_day], timestamps, self.floor)
        log_p = np.log(profile_ahead(self.profile, bar_in_day, horizons))
        log_g = 2.0 * np.log(np.maximum(np.asarray(sigma_garch, dtype=np.float64), 1e-150))
        return [np.column_stack([log_g[:, j], log_p[:, j], x]) for j in range(len(horizons))]

    def apply(self, bar_var: np.ndarray, timestamps: np.ndarray, bar_in_day: np.ndarray, sigma_garch: np.ndarray,
              horizons: Sequence[int]) -> np.ndarray:
        """(N, H) float32 corrected std of each horizon's return; row t uses bars <= t (and the calendar ahead)."""
        bid = np.asarray(bar_in_day, dtype=np.int64)
        design = self._design(bar_var, timestamps, bid, sigma_garch, horizons)
        log_var = np.column_stack([self.coef[j, 0] + design[j] @ self.coef[j, 1:] for j in range(len(horizons))])
        return np.exp(0.5 * log_var).astype(np.float32)

    def to_json(self) -> dict:
        return {"profile": self.profile.tolist(), "floor": self.floor, "coef": self.coef.tolist(),
                "columns": ["intercept", "log_garch_var", "log_profile_ahead", *WINDOW_NAMES]}

    @classmethod
    def from_json(cls, d: dict) -> "HARAnchor":
        return cls(np.asarray(d["profile"], dtype=np.float64), float(d["floor"]), np.asarray(d["coef"], dtype=np.float64))
