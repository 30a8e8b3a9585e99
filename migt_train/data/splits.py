"""Chronological train/val/test splits with purging at each boundary (`by: all`, for scoring a trained
model on another file, puts every sample in each split).

For splits A before B: every B sample's window (window_start..row) starts after A's last sample row, and
every A sample's target horizon (row..row+max_h) ends before B's first sample row. Boundary samples that
break either rule are dropped; both rules only shrink the sets, so checking against the un-purged sets
is enough.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from migt_train.errors import MigtError

NAMES = ("train", "val", "test")


def check_split_config(by: str, val_fraction: float, test_fraction: float, val_start=None, test_start=None) -> None:
    """Raise MigtError naming the first bad `data.split.*` value; needs no data."""
    if by == "all":
        return
    if by == "fraction":
        for key, f in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
            if isinstance(f, bool) or not isinstance(f, (int, float)) or not 0.0 < f < 0.5:
                raise MigtError(f"config key 'data.split.{key}': must lie in (0, 0.5) (got {f!r})")
    elif by == "date":
        if val_start is None or test_start is None:
            raise MigtError("config key 'data.split.val_start': by=date needs both val_start and test_start")
        v, t = _parse_start(val_start, "val_start", "UTC"), _parse_start(test_start, "test_start", "UTC")
        if v >= t:
            raise MigtError(f"config key 'data.split.val_start': must be before test_start ({val_start} >= {test_start})")
    else:
        raise MigtError(f"config key 'data.split.by': must be fraction, date or all (got {by!r})")


def _by_fraction(n: int, val_fraction: float, test_fraction: float) -> np.ndarray:
    n_test = int(round(n * test_fraction))
    n_val = int(round(n * val_fraction))
    label = np.zeros(n, dtype=np.int64)
    label[n - n_test - n_val :] = 1
    label[n - n_test :] = 2
    return label


def _parse_start(value, key: str, tz: str) -> np.int64:
    try:
        t = pd.Timestamp(str(value))
    except (ValueError, TypeError):
        raise MigtError(f"config key 'data.split.{key}': not a date/time (got {value!r})") from None
    t = t.tz_localize(tz) if t.tzinfo is None else t
    return np.int64(t.tz_convert("UTC").as_unit("ns").value)


def _by_date(ts_ns: np.ndarray, val_start, test_start, tz: str) -> np.ndarray:
    v, t = _parse_start(val_start, "val_start", tz), _parse_start(test_start, "test_start", tz)
    return (ts_ns >= v).astype(np.int64) + (ts_ns >= t).astype(np.int64)


def make_splits(
    samples: np.ndarray,
    timestamps: np.ndarray,
    window_start: np.ndarray,
    max_horizon: int,
    by: str = "fraction",
    val_fraction: float = 0.15,
    test_fraction: float = 0.15,
    val_start=None,
    test_start=None,
    tz: str = "America/New_York",
) -> dict[str, np.ndarray]:
    """samples: sorted sample rows -> {"train", "val", "test"}: sorted int64 rows, purged."""
    check_split_config(by, val_fraction, test_fraction, val_start, test_start)
    samples = np.asarray(samples, dtype=np.int64)
    if by == "all":  # scoring a trained model on another file: every sample is a test sample
        if len(samples) == 0:
            raise MigtError("data.split: no samples to score (0 rows)")
        return {name: samples.copy() for name in NAMES}
    if by == "fraction":
        label = _by_fraction(len(samples), float(val_fraction), float(test_fraction))
    else:
        ts_ns = np.asarray(timestamps).astype("datetime64[ns]").astype(np.int64)[samples]
        label = _by_date(ts_ns, val_start, test_start, tz)

    raw = [samples[label == i] for i in range(3)]
    keep = [np.ones(len(r), dtype=bool) for r in raw]
    for i in range(3):
        for j in range(i + 1, 3):
            if len(raw[i]) and len(raw[j]):
                keep[i] &= raw[i] + max_horizon < raw[j][0]
                keep[j] &= window_start[raw[j]] > raw[i][-1]
    out = {name: r[k] for name, r, k in zip(NAMES, raw, keep)}
    empty = [name for name, rows in out.items() if len(rows) == 0]
    if empty:
        sizes = ", ".join(f"{name} {len(r)} -> {len(out[name])}" for name, r in zip(NAMES, raw))
        raise MigtError(
            f"data.split: {' and '.join(empty)} split empty after purging (samples before -> after purging: "
            f"{sizes}; {len(samples)} samples in all); use more data or change the split"
        )
    return out
