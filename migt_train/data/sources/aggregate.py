"""Bars of the file -> bars of `data.bar_minutes`: bar-end labels moved to bar starts, finer bars merged by
time bucket (first open, max high, min low, last close, summed volume), all as whole-array operations."""

from __future__ import annotations

import numpy as np
import pandas as pd

from migt_train.errors import MigtError

NS_PER_MINUTE = 60_000_000_000


def bar_spacing_ns(ts_ns: np.ndarray, segment: np.ndarray) -> int | None:
    """The file's bar size: the shortest step between consecutive bars of one segment that is common (at
    least 5% as frequent as the most common step). Sparse bars (a quiet contract's 1-minute bars are often
    2-3 minutes apart) still show their true size; a stray short step does not. None: no step at all."""
    step = np.diff(ts_ns)
    step = step[(segment[1:] == segment[:-1]) & (step > 0)]
    if len(step) == 0:
        return None
    values, counts = np.unique(step, return_counts=True)
    return int(values[counts >= 0.05 * counts.max()].min())


def _minutes(ns: int) -> str:
    minutes = ns / NS_PER_MINUTE
    return f"{minutes:g} minute{'s' if minutes != 1 else ''}" if minutes >= 1 else f"{ns / 1e9:g} seconds"


def to_bar_starts(bars: pd.DataFrame, segment: np.ndarray, label: str) -> tuple[pd.DataFrame, int | None]:
    """Bars labelled by their end (label="end") -> labelled by their start, one file bar earlier. Also
    returns the file's bar spacing in ns (None when no two bars of a segment follow each other)."""
    ts = bars["timestamp"].to_numpy().astype("datetime64[ns]").astype(np.int64)
    spacing = bar_spacing_ns(ts, segment)
    if label == "end" and spacing is not None:
        bars = bars.copy()
        bars["timestamp"] = (ts - spacing).astype("datetime64[ns]")
    return bars, spacing


def to_bar_size(
    bars: pd.DataFrame, segment: np.ndarray, spacing: int | None, bar_minutes: int, tz: str, session_start: int, source: str,
    trained: bool = False,
) -> tuple[pd.DataFrame, np.ndarray]:
    """bars (timestamp = bar start, datetime64[ns] UTC; open..volume; time order), their segment ids and
    the file's bar spacing -> bars of bar_minutes labelled by their start, and their segment ids (`trained`:
    bar_minutes is a trained run's, which no setting can change). Buckets
    are aligned to the session start in exchange time, so 60-minute bars of a 09:30 open start at 09:30,
    10:30, ..."""
    ts = bars["timestamp"].to_numpy().astype("datetime64[ns]").astype(np.int64)
    target = int(bar_minutes) * NS_PER_MINUTE
    if spacing is None:
        spacing = target
    if trained and (spacing > target or target % spacing):
        # a trained run's bar size is fixed: its model knows no other
        raise MigtError(
            f"{source}: bars are mostly {_minutes(spacing)} apart; the run was trained on {bar_minutes}-minute bars "
            f"(data.bar_minutes={bar_minutes}), so it needs bars of {bar_minutes} minutes or of a size that divides it"
        )
    if spacing > target:
        raise MigtError(
            f"{source}: bars are mostly {_minutes(spacing)} apart, coarser than data.bar_minutes={bar_minutes}; "
            f"set data.bar_minutes to a multiple of {_minutes(spacing)}"
        )
    if target % spacing:
        raise MigtError(
            f"{source}: {_minutes(spacing)} bars do not add up to data.bar_minutes={bar_minutes}; "
            f"use a multiple of {_minutes(spacing)}"
        )
    if spacing == target:
        return bars, segment
    # offset inside the bucket, measured on the exchange's wall clock from the session start
    utc = pd.DatetimeIndex(ts.astype("datetime64[ns]")).tz_localize("UTC")
    wall = utc.tz_convert(tz).tz_localize(None).as_unit("ns").asi8
    offset = (wall - int(session_start) * NS_PER_MINUTE) % target
    bucket = ts - offset
    new = np.ones(len(ts), dtype=bool)
    new[1:] = (bucket[1:] != bucket[:-1]) | (segment[1:] != segment[:-1])
    first = np.flatnonzero(new)
    last = np.append(first[1:], len(ts)) - 1
    col = {k: bars[k].to_numpy(np.float64) for k in ("open", "high", "low", "close", "volume")}
    out = pd.DataFrame({
        "timestamp": bucket[first].astype("datetime64[ns]"),
        "open": col["open"][first],
        "high": np.maximum.reduceat(col["high"], first),
        "low": np.minimum.reduceat(col["low"], first),
        "close": col["close"][last],
        "volume": np.add.reduceat(col["volume"], first),
    })
    return out, segment[first]
