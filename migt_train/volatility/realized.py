"""Realised range variance over several time scales: the inputs of the `har_gk` baseline and the model's
realised-volatility context.

The Garman-Klass variance of a bar, 0.5 ln(H/L)^2 - (2 ln 2 - 1) ln(C/O)^2, uses the bar's high and low: about
seven times as efficient as the squared close-to-close return for the same bar. Averaged over the last bar,
hour, day and week (times, not bar counts, so the scales mean the same at any bar size) it is the classic
HAR set of regressors (Corsi 2009). A GARCH on closes sees none of the range; this module hands it to the
forecasters that can use it.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

# trailing windows of the realised measures, in minutes: one bar (0 = the bar itself), 1 h, 1 day, 1 week
WINDOW_MINUTES: tuple[int, ...] = (0, 60, 24 * 60, 7 * 24 * 60)
WINDOW_NAMES: tuple[str, ...] = ("1bar", "1h", "1d", "1w")
N_WINDOWS = len(WINDOW_MINUTES)
# slices of the past, (near, far) in minutes: the bars in (t - far, t - near]; (0, 0) = the bar itself, (0, w) = a
# trailing window. HAR's windows as slices:
HAR_SLICES: tuple[tuple[int, int], ...] = tuple((0, w) for w in WINDOW_MINUTES)
# The model's range and volume context: the bar, the last two hours in quarter-hour slices, the two hours before,
# then HAR's day and week. Disjoint recent slices let the heads learn how a burst's effect depends on its age (a
# lag kernel), where trailing windows only average it away: information often shows in volume or range hours
# before it reaches the closes, and how long before is the market's, not ours, to say. The recent slices (up to
# TRADING_TIME_MINUTES) count trading time, the bars that traded (see slice_sums): after a session break the bars
# before it stay the recent past instead of reading as no news; the day and the week are clock windows.
TRADING_TIME_MINUTES = 240
CONTEXT_SLICES: tuple[tuple[int, int], ...] = (
    (0, 0), *((m, m + 15) for m in range(0, 120, 15)), (120, 240), (0, 24 * 60), (0, 7 * 24 * 60))
# the model's context: range ratios and volume ratios over the context slices, signed moves over HAR's windows
N_REALIZED = 2 * len(CONTEXT_SLICES) + N_WINDOWS
# the context's column of the bar's own move (the first signed move)
BAR_MOVE = 2 * len(CONTEXT_SLICES)
# a ratio of realised to expected variance below this is read as this (bars without a range, e.g. no trades)
MIN_RATIO = 1e-3


def gk_variance(open_: np.ndarray, high: np.ndarray, low: np.ndarray, close: np.ndarray) -> np.ndarray:
    """(N,) Garman-Klass variance of each bar, clipped at 0 (the estimator can dip below 0 on a narrow range)."""
    o, h, lo, c = (np.asarray(a, dtype=np.float64) for a in (open_, high, low, close))
    gk = 0.5 * np.log(h / lo) ** 2 - (2.0 * np.log(2.0) - 1.0) * np.log(c / o) ** 2
    return np.maximum(gk, 0.0)


def bar_variance(features: np.ndarray, names: Sequence[str]) -> np.ndarray:
    """(N, V) bar features -> (N,) realised variance of each bar: its Garman-Klass variance plus the squared gap
    from the previous close to its open (the gap is most of a session's first bar, and GK cannot see it)."""
    col = {n: i for i, n in enumerate(names)}
    f = np.asarray(features, dtype=np.float64)
    gap = f[:, col["log_return"]] - np.log(f[:, col["close"]] / f[:, col["open"]])
    return f[:, col["garman_klass"]] ** 2 + gap**2


def trailing_sums(values: np.ndarray, timestamps: np.ndarray, windows: Sequence[int] = WINDOW_MINUTES) -> np.ndarray:
    """(N,) values at sorted bar times -> (N, K) sums over the bars in (t - window, t]; window 0 = the bar alone.
    Causal: row t uses rows <= t."""
    v = np.asarray(values, dtype=np.float64)
    out = np.empty((len(v), len(windows)))
    series = pd.Series(v, index=pd.DatetimeIndex(np.asarray(timestamps).astype("datetime64[ns]")))
    for k, minutes in enumerate(windows):
        out[:, k] = v if minutes <= 0 else series.rolling(f"{int(minutes)}min").sum().to_numpy()
    return out


def slice_sums(values: np.ndarray, timestamps: np.ndarray, slices: Sequence[tuple[int, int]],
               bar_minutes: int | None = None) -> np.ndarray:
    """(N,) values at sorted bar times -> (N, K) sums over the bars in (t - far, t - near] for each slice (near,
    far) (far 0: the bar alone), as differences of trailing sums. bar_minutes given: a slice with far <=
    TRADING_TIME_MINUTES counts trading time, the rows (t - far / bar_minutes, t - near / bar_minutes] (rounded),
    whatever clock time they span. Causal: row t uses rows <= t."""
    values = np.asarray(values, dtype=np.float64)
    clock = [(near, far) for near, far in slices if far > 0 and (bar_minutes is None or far > TRADING_TIME_MINUTES)]
    ends = sorted({m for pair in clock for m in pair if m > 0})
    trailing = dict(zip(ends, trailing_sums(values, timestamps, ends).T))
    cum = np.concatenate([[0.0], np.cumsum(values)])
    row = np.arange(len(values))
    out = np.empty((len(values), len(slices)))
    for k, (near, far) in enumerate(slices):
        if far <= 0:
            out[:, k] = values
        elif (near, far) in clock:
            out[:, k] = trailing[far] - (trailing[near] if near > 0 else 0.0)
        else:
            lo, hi = (int(np.floor(m / bar_minutes + 0.5)) for m in (far, near))
            out[:, k] = cum[np.maximum(row + 1 - hi, 0)] - cum[np.maximum(row + 1 - lo, 0)] if lo > hi else 0.0
    return out


def realized_ratios(gk: np.ndarray, expected_var: np.ndarray, timestamps: np.ndarray,
                    slices: Sequence[tuple[int, int]] = HAR_SLICES, bar_minutes: int | None = None) -> np.ndarray:
    """(N, K) float32 log of (realised range variance / the variance a volatility model expected for the same
    bars) over each slice of the past (default: HAR's trailing windows): positive when the range ran hotter than
    the model thought; 0 for a slice without bars (a clock-time slice inside a session break, or before the first
    bar). bar_minutes: the recent slices in trading time (slice_sums).

    gk: (N,) Garman-Klass variance per bar; expected_var: (N,) the model's one-bar variance of each bar, made
    before the bar (e.g. the GARCH/time-of-day anchor's). Both sums cover the same bars, so the time-of-day
    pattern cancels."""
    realised = slice_sums(np.asarray(gk, dtype=np.float64), timestamps, slices, bar_minutes)
    expected = slice_sums(np.asarray(expected_var, dtype=np.float64), timestamps, slices, bar_minutes)
    bars = slice_sums(np.ones(len(realised)), timestamps, slices, bar_minutes) > 0.5
    ratio = np.where(bars, realised / np.maximum(expected, 1e-300), 1.0)
    return np.log(np.maximum(ratio, MIN_RATIO)).astype(np.float32)



def volume_profile(volume: np.ndarray, bar_in_day: np.ndarray, fit_bars: slice, bars_per_day: int) -> np.ndarray | None:
    """(bars_per_day,) mean volume of each bar of day over fit_bars (the training bars; a bar of day without
    training bars gets the overall mean), or None when those bars carry no volume (a file without it)."""
    v = np.asarray(volume, dtype=np.float64)[fit_bars]
    bid = np.asarray(bar_in_day, dtype=np.int64)[fit_bars]
    if not len(v) or not np.isfinite(v).all() or v.mean() <= 0:
        return None
    sums = np.bincount(bid, weights=v, minlength=bars_per_day)[:bars_per_day]
    counts = np.bincount(bid, minlength=bars_per_day)[:bars_per_day]
    return np.where(counts > 0, sums / np.maximum(counts, 1), v.mean())


def volume_ratios(volume: np.ndarray, profile: np.ndarray | None, bar_in_day: np.ndarray,
                  timestamps: np.ndarray, slices: Sequence[tuple[int, int]] = HAR_SLICES,
                  bar_minutes: int | None = None) -> np.ndarray:
    """(N, K) float32 log of (volume traded / the volume usual at those bars' times of day) over each trailing
    slice of the past: relative volume, which reveals how active the market is beyond its daily rhythm (zeros without a
    profile). Causal: row t uses rows <= t."""
    if profile is None:
        return np.zeros((len(volume), len(slices)), dtype=np.float32)
    expected = np.asarray(profile, dtype=np.float64)[np.asarray(bar_in_day, dtype=np.int64)]
    return realized_ratios(np.maximum(np.asarray(volume, dtype=np.float64), 0.0), expected, timestamps, slices,
                           bar_minutes)


def signed_moves(returns: np.ndarray, expected_var: np.ndarray, timestamps: np.ndarray) -> np.ndarray:
    """(N, K) float32 the return over each trailing window in units of its expected std (the sum of the bars'
    one-bar variances a volatility model expected): a fall of several stds is news that raises volatility in
    equity indices more than a rise (the leverage effect). Causal: row t uses rows <= t."""
    moves = trailing_sums(np.asarray(returns, dtype=np.float64), timestamps)
    scale = np.sqrt(np.maximum(trailing_sums(expected_var, timestamps), 1e-300))
    return np.clip(moves / scale, -10.0, 10.0).astype(np.float32)
