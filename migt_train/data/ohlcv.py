"""Read and validate a user's OHLCV file (parquet or CSV). Every problem becomes one MigtError that names
the file, the rule and how many rows break it; nothing is fixed silently (sorting only when asked)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from migt_train.errors import MigtError

COLUMNS = ["timestamp", "open", "high", "low", "close", "volume"]
PARQUET_SUFFIXES = {".parquet", ".pq"}
CSV_SUFFIXES = {".csv", ".txt", ".gz", ".bz2", ".zip", ".xz"}


def _read_table(path: Path) -> pd.DataFrame:
    if not path.exists():
        raise MigtError(f"{path}: file not found")
    if not path.is_file():
        raise MigtError(f"{path}: not a file")
    suffix = path.suffix.lower()
    if suffix in PARQUET_SUFFIXES:
        try:
            df = pd.read_parquet(path)
        except Exception as exc:
            raise MigtError(f"{path}: not a readable parquet file ({type(exc).__name__}: {str(exc)[:200]})") from None
        # a DatetimeIndex named timestamp (pandas' own to_parquet) counts as the column
        if isinstance(df.index, pd.DatetimeIndex) or (df.index.name or "").lower() == "timestamp":
            df = df.reset_index()
        return df
    if suffix in CSV_SUFFIXES:
        try:
            return pd.read_csv(path)
        except Exception as exc:
            raise MigtError(f"{path}: not a readable CSV file ({type(exc).__name__}: {str(exc)[:200]})") from None
    raise MigtError(f"{path}: unknown file type {suffix!r}; use .parquet or .csv")


def _parse_timestamps(raw: pd.Series) -> pd.Series:
    """Tz-aware -> UTC; naive -> taken as UTC. Unparseable entries -> NaT."""
    try:
        ts = pd.to_datetime(raw, utc=True, errors="coerce")
        if ts.isna().sum() > raw.isna().sum():
            ts = pd.to_datetime(raw, utc=True, errors="coerce", format="mixed")
    except (TypeError, ValueError):
        ts = pd.to_datetime(raw.astype(str), utc=True, errors="coerce", format="mixed")
    return ts.dt.as_unit("ns")


def _rows(mask: np.ndarray, ts: pd.Series | None = None) -> str:
    n = int(mask.sum())
    first = int(np.argmax(mask))
    where = f"first at row {first}" + (f", {ts.iloc[first]}" if ts is not None and pd.notna(ts.iloc[first]) else "")
    return f"{n} row{'s' if n != 1 else ''}; {where}"


def read_ohlcv(path: str | Path, sort: bool = False) -> pd.DataFrame:
    """-> DataFrame timestamp (datetime64[ns], UTC, naive), open, high, low, close, volume (float64),
    strictly increasing in time. Rows are numbered from 0 after the header in messages."""
    path = Path(path).expanduser()
    df = _read_table(path)
    lower = {str(c).strip().lower(): c for c in df.columns}
    if len(lower) < len(df.columns):
        raise MigtError(f"{path}: column names clash when case is ignored: {list(df.columns)}")
    missing = [c for c in COLUMNS if c not in lower]
    if missing:
        raise MigtError(f"{path}: missing column{'s' if len(missing) > 1 else ''} {', '.join(missing)} (has {', '.join(map(str, df.columns))})")
    if len(df) == 0:
        raise MigtError(f"{path}: no rows (0 rows)")
    if pd.api.types.is_numeric_dtype(df[lower["timestamp"]]):
        raise MigtError(f"{path}: timestamp column is numeric; write date-times such as 2024-01-02 14:30 (naive = UTC) ({len(df)} rows)")
    ts = _parse_timestamps(df[lower["timestamp"]])
    values = {c: pd.to_numeric(df[lower[c]], errors="coerce").to_numpy(np.float64) for c in COLUMNS[1:]}

    problems: list[str] = []
    bad_ts = ts.isna().to_numpy()
    if bad_ts.any():
        problems.append(f"unparseable or missing timestamps ({_rows(bad_ts)})")
    finite = np.column_stack([np.isfinite(values[c]) for c in COLUMNS[1:]])
    nonfinite = ~finite.all(axis=1)
    if nonfinite.any():
        cols = [c for c, ok in zip(COLUMNS[1:], finite.all(axis=0)) if not ok]
        problems.append(f"NaN, inf or non-numeric values in {', '.join(cols)} ({_rows(nonfinite, ts)})")
    with np.errstate(invalid="ignore"):
        o, h, l, c, v = (values[k] for k in COLUMNS[1:])
        nonpos = (np.column_stack([o, h, l, c]) <= 0).any(axis=1)
        if nonpos.any():
            problems.append(f"non-positive prices ({_rows(nonpos, ts)})")
        bad_hl = (h < np.maximum(o, c)) | (l > np.minimum(o, c)) | (h < l)
        if bad_hl.any():
            problems.append(f"high < max(open, close) or low > min(open, close) ({_rows(bad_hl, ts)})")
        neg_vol = v < 0
        if neg_vol.any():
            problems.append(f"negative volume ({_rows(neg_vol, ts)})")
    if not bad_ts.any():
        dup = ts.duplicated(keep="first").to_numpy()
        if dup.any():
            problems.append(f"duplicate timestamps ({_rows(dup, ts)})")
        back = np.zeros(len(ts), dtype=bool)
        back[1:] = np.diff(ts.dt.tz_localize(None).to_numpy().astype(np.int64)) < 0
        if back.any() and not sort:
            problems.append(f"timestamps not increasing ({_rows(back, ts)}); set data.sort=true to sort them")
    if problems:
        raise MigtError(f"{path}: " + "; ".join(problems))

    out = pd.DataFrame({"timestamp": ts.dt.tz_localize(None).to_numpy(), **values})
    if sort:
        out = out.sort_values("timestamp", kind="stable", ignore_index=True)
    return out


def check_bar_size(bars: pd.DataFrame, bar_minutes: int, source: str) -> None:
    """The most common spacing of consecutive bars must be data.bar_minutes: bar_in_day and the
    horizons (in bars) mean nothing otherwise."""
    if len(bars) < 2:
        return
    step = np.diff(bars["timestamp"].to_numpy().astype(np.int64)) // 60_000_000_000
    values, counts = np.unique(step, return_counts=True)
    mode = int(values[np.argmax(counts)])
    if mode != bar_minutes:
        raise MigtError(
            f"{source}: bars are mostly {mode} minutes apart but data.bar_minutes={bar_minutes} "
            f"({int(counts.max())} of {len(step)} gaps)"
        )
