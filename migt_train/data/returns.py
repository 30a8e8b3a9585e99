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


def segment_first_rows(segment: np.ndarray) -> np.ndarray:
    """(N,) first row of each row's segment (segments are runs of equal, increasing ids)."""
    segment = np.asarray(segment)
    starts = np.r_[0, np.flatnonzero(np.diff(segment)) + 1].astype(np.int64)
    return starts[np.searchsorted(starts, np.arange(len(segment)), side="right") - 1]


def log_return_targets(close: np.ndarray, horizons: Sequence[int], segment: np.ndarray | None = None) -> np.ndarray:
    """(N, H) log(close[t+h] / close[t]); NaN where t+h is past the data end or in another segment (a
    return across a contract roll compares two different contracts)."""
    logc = np.log(np.asarray(close, dtype=np.float64))
    n = len(logc)
    out = np.full((n, len(horizons)), np.nan)
    for j, h in enumerate(horizons):
        if h < n:
            out[: n - h, j] = logc[h:] - logc[: n - h]
            if segment is not None:
                out[: n - h, j][segment[h:] != segment[: n - h]] = np.nan
    return out


def window_starts(
    ts: np.ndarray, lookback_ns: int, max_seq_len: int, first_row: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """First row of each row's lookback: the first bar with timestamp > ts[t] - lookback, and no more
    than max_seq_len bars back, and not before `first_row` (the row's segment start). Also whether that
    lookback is complete (its segment reaches back far enough)."""
    t = np.asarray(ts).astype("datetime64[ns]").astype(np.int64)
    rows = np.arange(len(t), dtype=np.int64)
    floor = np.zeros(len(t), np.int64) if first_row is None else np.asarray(first_row, np.int64)
    by_time = np.searchsorted(t, t - lookback_ns, side="right")
    by_len = rows - max_seq_len + 1
    start = np.maximum(np.maximum(by_time, by_len), floor)
    # complete when a bar at or before the cutoff exists, or the length cap binds, inside the segment
    full = (by_time > floor) | (by_len >= floor)
    return start, full


def sample_rows(targets: np.ndarray, full_lookback: np.ndarray) -> np.ndarray:
    return np.flatnonzero(np.isfinite(targets).all(axis=1) & full_lookback).astype(np.int64)
