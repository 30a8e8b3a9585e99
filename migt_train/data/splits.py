"""Chronological train/val/test splits with purging at each boundary (`by: all`, for scoring a trained
model on another file, puts every sample in each split).

For splits A before B: every B sample's window (window_start..row) starts after A's last sample row, and
every A sample's target horizon (row..row+max_h) ends before B's first sample row. Boundary samples that
break either rule are dropped; both rules only shrink the sets, so checking against the un-purged sets
is enough.
"""

from __future__ import annotations

from typing import Sequence

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
    return pooled_splits([(samples, timestamps, window_start)], max_horizon, by, val_fraction, test_fraction,
                         val_start, test_start, tz)[0]


def pooled_splits(
    parts: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]],
    max_horizon: int,
    by: str = "fraction",
    val_fraction: float = 0.15,
    test_fraction: float = 0.15,
    val_start=None,
    test_start=None,
    tz: str = "America/New_York",
    names: Sequence[str] | None = None,
) -> list[dict[str, np.ndarray]]:
    """Splits of several instruments that share their boundaries in time. parts: per instrument (sorted sample
    rows, timestamps of its rows, window_start of its rows) -> per instrument {"train", "val", "test"}.

    `fraction` cuts the union of every instrument's sample times, so each split is one period for all of them;
    purging is in time across instruments: a sample of an earlier split is kept when its target ends (the bar
    max_horizon rows on) before the first sample of the later split of any instrument, a sample of a later
    split when its window starts after the last sample of the earlier split of any instrument. So no
    instrument's val or test period is inside another's training targets or windows. With one instrument this
    is the row rule of the module docstring (timestamps increase with rows)."""
    check_split_config(by, val_fraction, test_fraction, val_start, test_start)
    samples = [np.asarray(p[0], dtype=np.int64) for p in parts]
    if by == "all":  # scoring a trained model on another file: every sample is a test sample
        if sum(len(s) for s in samples) == 0:
            raise MigtError("data.split: no samples to score (0 rows)")
        return [{name: s.copy() for name in NAMES} for s in samples]
    ts = [np.asarray(p[1]).astype("datetime64[ns]").astype(np.int64) for p in parts]
    start = [np.asarray(p[2], dtype=np.int64) for p in parts]
    sample_ts = [t[s] for t, s in zip(ts, samples)]
    if by == "fraction":
        every = np.sort(np.concatenate(sample_ts))
        n = len(every)
        cuts = [n - int(round(n * float(test_fraction))) - int(round(n * float(val_fraction))), n - int(round(n * float(test_fraction)))]
        bounds = [every[c] if c < n else np.iinfo(np.int64).max for c in cuts]
        labels = [(st >= bounds[0]).astype(np.int64) + (st >= bounds[1]).astype(np.int64) for st in sample_ts]
    else:
        labels = [_by_date(st, val_start, test_start, tz) for st in sample_ts]

    raw = [[s[lab == i] for i in range(3)] for s, lab in zip(samples, labels)]
    keep = [[np.ones(len(r), dtype=bool) for r in inst] for inst in raw]
    for i in range(3):
        for j in range(i + 1, 3):
            ends = [t[r[i][-1]] for t, r in zip(ts, raw) if len(r[i])]
            firsts = [t[r[j][0]] for t, r in zip(ts, raw) if len(r[j])]
            if not ends or not firsts:
                continue
            last_i, first_j = max(ends), min(firsts)
            for k, (t, r) in enumerate(zip(ts, raw)):
                keep[k][i] &= t[r[i] + max_horizon] < first_j
                keep[k][j] &= t[start[k][r[j]]] > last_i
    out = [{name: r[i][kp[i]] for i, name in enumerate(NAMES)} for r, kp in zip(raw, keep)]
    for k, split in enumerate(out):
        empty = [name for name, rows in split.items() if len(rows) == 0]
        if empty:
            sizes = ", ".join(f"{name} {len(r)} -> {len(split[name])}" for name, r in zip(NAMES, raw[k]))
            who = f"{names[k]}: " if names is not None and len(parts) > 1 else ""
            raise MigtError(
                f"data.split: {who}{' and '.join(empty)} split empty after purging (samples before -> after purging: "
                f"{sizes}; {len(samples[k])} samples in all); use more data or change the split"
            )
    return out
