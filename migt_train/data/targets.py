"""Targets, lookback windows and sample rows, all as whole-array operations."""

from __future__ import annotations

from typing import Sequence

import numpy as np


def horizon_name(bars: int, bar_minutes: int) -> str:
    """3 bars of 5 min -> '15m', 12 -> '1h', 18 of 5 -> '90m'."""
    minutes = int(bars) * int(bar_minutes)
    if minutes < 60 or minutes % 60:
        return f"{minutes}m"
    return f"{minutes // 60}h"


def log_return_targets(close: np.ndarray, horizons: Sequence[int]) -> np.ndarray:
    """(N, H) log(close[t+h] / close[t]); NaN where t+h is past the data end."""
    logc = np.log(np.asarray(close, dtype=np.float64))
    n = len(logc)
    out = np.full((n, len(horizons)), np.nan)
    for j, h in enumerate(horizons):
        if h < n:
            out[: n - h, j] = logc[h:] - logc[: n - h]
    return out


def window_starts(ts: np.ndarray, lookback_ns: int, max_seq_len: int) -> tuple[np.ndarray, np.ndarray]:
    """First row of each row's lookback: the first bar with timestamp > ts[t] - lookback, and no more
    than max_seq_len bars back. Also whether that lookback is complete (data reaches back far enough)."""
    t = np.asarray(ts).astype("datetime64[ns]").astype(np.int64)
    rows = np.arange(len(t), dtype=np.int64)
    by_time = np.searchsorted(t, t - lookback_ns, side="right")
    by_len = rows - max_seq_len + 1
    start = np.maximum(by_time, by_len)
    # complete when a bar at or before the cutoff exists, or the length cap binds inside the data
    full = (by_time > 0) | (by_len >= 0)
    return start, full


def sample_rows(targets: np.ndarray, full_lookback: np.ndarray) -> np.ndarray:
    return np.flatnonzero(np.isfinite(targets).all(axis=1) & full_lookback).astype(np.int64)
