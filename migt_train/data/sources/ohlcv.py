"""Read and validate a user's OHLCV file (parquet, CSV, or Databento DBN). Every problem becomes one MigtError
that names the file, the rule and how many rows break it; nothing is fixed silently (sorting only when asked).

Timestamps come back as UTC; naive ones are read in `timezone`. Several instruments in one file (a `symbol`
or `instrument_id` column) come back with a `contract` column; rolls.py turns them into one series.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import numpy as np
import pandas as pd

from migt_train.data.sources.databento import apply_conventions, is_dbn, read_dbn
from migt_train.errors import MigtError

log = logging.getLogger(__name__)

COLUMNS = ["timestamp", "open", "high", "low", "close", "volume"]
PARQUET_SUFFIXES = {".parquet", ".pq"}
CSV_SUFFIXES = {".csv", ".txt", ".gz", ".bz2", ".zip", ".xz"}
# text read as is: its last line can be checked for a line end (a compressed file is not being appended to)
PLAIN_TEXT_SUFFIXES = {".csv", ".txt"}
# the timestamp column under its plain name or Databento's (the bar start)
TIME_COLUMNS = ("timestamp", "ts_event")
# what names an instrument, in order of preference
CONTRACT_COLUMNS = ("symbol", "instrument_id")
_DECIMAL_COMMA = re.compile(r"^\s*-?\d+,\d+\s*$")
# a time of day followed by a UTC offset or zone letter: 10:05-05:00, 10:05:00.5+0100, 15:05Z, 15:05 UTC
_OFFSET = r"\d:\d\d(?::\d\d(?:\.\d*)?)?\s*(?:[Zz]|UTC|GMT|[+-]\d\d(?::?\d\d)?)\s*$"


def _read_table(path: Path) -> pd.DataFrame:
    if not path.exists():
        raise MigtError(f"{path}: file not found")
    if not path.is_file():
        raise MigtError(f"{path}: not a file")
    if is_dbn(path):
        return read_dbn(path)
    suffix = path.suffix.lower()
    if suffix in PARQUET_SUFFIXES:
        try:
            df = pd.read_parquet(path)
        except Exception as exc:
            raise MigtError(f"{path}: not a readable parquet file ({type(exc).__name__}: {str(exc)[:200]})") from None
        # a DatetimeIndex (pandas' own to_parquet, Databento's to_df) counts as the column
        if isinstance(df.index, pd.DatetimeIndex) or str(df.index.name or "").lower() in TIME_COLUMNS:
            df = df.reset_index()
        return df
    if suffix in CSV_SUFFIXES:
        return _read_csv(path)
    raise MigtError(f"{path}: unknown file type {suffix!r}; use .parquet, .csv or .dbn(.zst)")


def _read_csv(path: Path) -> pd.DataFrame:
    try:
        df = pd.read_csv(path)
    except Exception as exc:
        raise MigtError(f"{path}: not a readable CSV file ({type(exc).__name__}: {str(exc)[:200]})") from None
    if len(df.columns) == 1:
        for sep, name in ((";", "';'-separated"), ("\t", "tab-separated")):
            if sep in str(df.columns[0]):
                raise MigtError(
                    f"{path}: one column {str(df.columns[0])[:60]!r}: the file looks {name}; "
                    "save it comma-separated with '.' as the decimal point"
                )
    if len(df) and path.suffix.lower() in PLAIN_TEXT_SUFFIXES and not _ends_with_newline(path):
        # a file being appended to (a live feed) holds a line still being written: its volume and close
        # are not final, so it is not read; a complete last line without its newline is lost the same way
        line = _count_lines(path)
        log.warning("%s: line %d (the last, row %d) has no line end: a line still being written? dropped; end the "
                    "file with a newline to keep it", path, line, len(df) - 1)
        df = df.iloc[:-1]
    return df


def _ends_with_newline(path: Path) -> bool:
    with open(path, "rb") as f:
        f.seek(0, 2)
        if f.tell() == 0:
            return True
        f.seek(-1, 2)
        return f.read(1) in (b"\n", b"\r")


def _count_lines(path: Path) -> int:
    """Lines in the file (the last one counted without its newline), read in blocks."""
    n = 0
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            n += block.count(b"\n")
    return n + 1


def _epoch_unit(values: np.ndarray) -> str | None:
    """Unit of integer epoch timestamps from their magnitude (dates after 1973): ns, us, ms or s."""
    top = float(np.nanmax(np.abs(values))) if len(values) else 0.0
    for unit, floor in (("ns", 1e17), ("us", 1e14), ("ms", 1e11), ("s", 1e8)):
        if top >= floor:
            return unit
    return None


def _check_one_kind(text: pd.Series, name: str, path: Path) -> None:
    """Times with and without UTC offsets in one column: the naive ones cannot be placed (reading them as
    UTC or as data.timezone is a guess that shifts them by hours), so the first row of the other kind than
    the column's first entry is named."""
    present = text.notna() & (text.str.strip() != "")
    aware = text.str.contains(_OFFSET, regex=True, na=False).to_numpy(bool)
    present = present.to_numpy(bool)
    if not aware.any() or not (present & ~aware).any():
        return
    first = int(np.argmax(present))
    odd = np.flatnonzero(present & (aware != aware[first]))
    i = int(odd[0])
    has = lambda a: "has a UTC offset" if a else "has none"  # noqa: E731
    raise MigtError(
        f"{path}: column {name} mixes times with and without UTC offsets: row {i} {text.iloc[i]!r} {has(aware[i])}, "
        f"row {first} {text.iloc[first]!r} {has(aware[first])} ({len(odd)} rows like row {i}); write every time "
        "with its offset, or none (naive times are read in data.timezone)"
    )


def _parse_timestamps(raw: pd.Series, timezone: str, path: Path, name: str = "timestamp") -> pd.Series:
    """-> tz-aware UTC series (NaT where unparseable). Integers are epoch times (unit from magnitude); text
    with an offset is converted; naive text is wall-clock time in `timezone`."""
    if pd.api.types.is_numeric_dtype(raw) and not pd.api.types.is_bool_dtype(raw):
        values = raw.to_numpy(np.float64)
        unit = _epoch_unit(values[np.isfinite(values)])
        if unit is None or not np.allclose(values[np.isfinite(values)] % 1, 0):
            raise MigtError(
                f"{path}: timestamp column is numeric but not epoch seconds/ms/us/ns; write date-times such as "
                f"2024-01-02 14:30 ({len(raw)} rows)"
            )
        return pd.to_datetime(raw, unit=unit, utc=True, errors="coerce").dt.as_unit("ns")
    if isinstance(raw.dtype, pd.DatetimeTZDtype):
        return raw.dt.tz_convert("UTC").dt.as_unit("ns")
    if pd.api.types.is_datetime64_dtype(raw):
        return _localize(raw.dt.as_unit("ns"), timezone, path)
    text = raw.astype("string")
    # one parse finds out whether the text carries offsets; utc=True would hide naive entries
    try:
        ts = pd.to_datetime(text, errors="coerce", format="ISO8601")
    except (TypeError, ValueError):
        ts = None
    if ts is None or ts.isna().sum() > raw.isna().sum() or ts.dtype == object:
        # not one clean ISO 8601 column of one kind (pandas refuses to mix naive and aware entries)
        _check_one_kind(text, name, path)
        try:
            ts = pd.to_datetime(text, utc=True, errors="coerce", format="mixed")
        except (TypeError, ValueError):
            ts = pd.Series(pd.NaT, index=raw.index, dtype="datetime64[ns, UTC]")
        return ts.dt.as_unit("ns")
    if isinstance(ts.dtype, pd.DatetimeTZDtype):
        return ts.dt.tz_convert("UTC").dt.as_unit("ns")
    return _localize(ts.dt.as_unit("ns"), timezone, path)


def _localize(naive: pd.Series, timezone: str, path: Path) -> pd.Series:
    """Naive wall-clock times in `timezone` -> UTC. A repeated hour in autumn is resolved by the order of the
    rows where it can be; local times that do not exist or stay ambiguous are an error naming them."""
    if timezone == "UTC":
        return naive.dt.tz_localize("UTC")
    try:
        local = naive.dt.tz_localize(timezone, ambiguous="infer", nonexistent="NaT")
    except Exception:
        local = naive.dt.tz_localize(timezone, ambiguous="NaT", nonexistent="NaT")
    bad = (local.isna() & naive.notna()).to_numpy()
    if bad.any():
        raise MigtError(
            f"{path}: local times that do not exist or are ambiguous in data.timezone={timezone} (daylight-saving "
            f"switch; {_rows(bad, naive)}); write timestamps with UTC offsets"
        )
    return local.dt.tz_convert("UTC")


def _rows(mask: np.ndarray, ts: pd.Series | None = None) -> str:
    n = int(mask.sum())
    first = int(np.argmax(mask))
    where = f"first at row {first}" + (f", {ts.iloc[first]}" if ts is not None and pd.notna(ts.iloc[first]) else "")
    return f"{n} row{'s' if n != 1 else ''}; {where}"


def _numeric(df: pd.DataFrame, col: str, name: str, path: Path) -> np.ndarray:
    raw = df[col]
    if raw.dtype == object or pd.api.types.is_string_dtype(raw):
        sample = raw.dropna().astype(str).head(200)
        commas = sample.str.match(_DECIMAL_COMMA)
        if len(sample) and commas.mean() > 0.5:
            raise MigtError(
                f"{path}: column {name} has decimal commas (e.g. {sample[commas].iloc[0]!r}); write '.' as the decimal point"
            )
    return pd.to_numeric(raw, errors="coerce").to_numpy(np.float64)


def read_ohlcv(path: str | Path, sort: bool = False, timezone: str = "UTC") -> pd.DataFrame:
    """-> DataFrame timestamp (datetime64[ns], UTC, naive), open, high, low, close, volume (float64), plus
    `contract` (str) when the file has a symbol / instrument_id column. Each contract's timestamps are
    strictly increasing (the rows of several contracts stay in file order). Rows are numbered from 0 after
    the header in messages."""
    path = Path(path).expanduser()
    return parse_ohlcv(_read_table(path), path, sort=sort, timezone=timezone)


def parse_ohlcv(df: pd.DataFrame, path: str | Path, sort: bool = False, timezone: str = "UTC") -> pd.DataFrame:
    """read_ohlcv for a table already in memory (`path` names it in messages)."""
    path = Path(path)
    if isinstance(df.index, pd.DatetimeIndex) or str(df.index.name or "").lower() in TIME_COLUMNS:
        df = df.reset_index()
    lower = {str(c).strip().lower(): c for c in df.columns}
    if len(lower) < len(df.columns):
        raise MigtError(f"{path}: column names clash when case is ignored: {list(df.columns)}")
    time_col = next((lower[c] for c in TIME_COLUMNS if c in lower), None)
    missing = (["timestamp"] if time_col is None else []) + [c for c in COLUMNS[1:] if c not in lower]
    if missing:
        raise MigtError(f"{path}: missing column{'s' if len(missing) > 1 else ''} {', '.join(missing)} (has {', '.join(map(str, df.columns))})")
    if len(df) == 0:
        raise MigtError(f"{path}: no rows (0 rows)")
    df = apply_conventions(df, lower, path)
    ts = _parse_timestamps(df[time_col], timezone, path, str(time_col))
    values = {c: _numeric(df, lower[c], c, path) for c in COLUMNS[1:]}
    # Databento leaves `symbol` empty when the file has no symbol mappings: then instrument_id names them
    contract_col = next((lower[c] for c in CONTRACT_COLUMNS if c in lower and df[lower[c]].notna().any()), None)
    contract = None if contract_col is None else df[contract_col].astype("string").fillna("").to_numpy(object)

    problems: list[str] = []
    bad_ts = ts.isna().to_numpy()
    if bad_ts.any():
        problems.append(f"unparseable or missing timestamps ({_rows(bad_ts)})")
    finite = np.column_stack([np.isfinite(values[c]) for c in COLUMNS[1:]])
    nonfinite = ~finite.all(axis=1)
    if nonfinite.any():
        cols = [c for c, ok in zip(COLUMNS[1:], finite.all(axis=0)) if not ok]
        problems.append(f"NaN, inf or non-numeric values in {', '.join(cols)} ({_rows(nonfinite, ts)})")
    # calendar spreads (NQH4-NQM4) trade at differences of prices, which may be zero or negative: rolls.py
    # drops them, so their prices are not checked here
    outright = np.ones(len(df), dtype=bool) if contract is None else ~pd.Series(contract).str.contains("-", regex=False).to_numpy()
    with np.errstate(invalid="ignore"):
        o, h, l, c, v = (values[k] for k in COLUMNS[1:])
        nonpos = (np.column_stack([o, h, l, c]) <= 0).any(axis=1) & outright
        if nonpos.any():
            problems.append(f"non-positive prices ({_rows(nonpos, ts)})")
        bad_hl = ((h < np.maximum(o, c)) | (l > np.minimum(o, c)) | (h < l)) & outright
        if bad_hl.any():
            problems.append(f"high < max(open, close) or low > min(open, close) ({_rows(bad_hl, ts)})")
        neg_vol = v < 0
        if neg_vol.any():
            problems.append(f"negative volume ({_rows(neg_vol, ts)})")
    ts_ns = ts.dt.tz_localize(None).to_numpy().astype("datetime64[ns]")
    if not bad_ts.any():
        problems += _order_problems(ts_ns, ts, contract, sort, df, lower)
    if problems:
        raise MigtError(f"{path}: " + "; ".join(problems))

    out = pd.DataFrame({"timestamp": ts_ns, **values})
    if contract is not None:
        out["contract"] = contract
    if sort:
        out = out.sort_values(["contract", "timestamp"] if contract is not None else "timestamp", kind="stable", ignore_index=True)
    return out


def _order_problems(ts_ns: np.ndarray, ts: pd.Series, contract: np.ndarray | None, sort: bool,
                    df: pd.DataFrame, lower: dict[str, str]) -> list[str]:
    """Duplicate or decreasing timestamps, within each contract when the file names contracts."""
    key = pd.DataFrame({"t": ts_ns.astype(np.int64)})
    if contract is not None:
        key["c"] = contract
    dup = key.duplicated(keep="first").to_numpy()
    out: list[str] = []
    if dup.any():
        hint = ""
        if contract is not None:
            named = [c for c in ("symbol", "instrument_id", "publisher_id") if c in lower]
            hint = (f"; the file has {', '.join(named)} columns: several contracts, venues or ids at one time? "
                    "pick one contract with data.symbol, and export one publisher per contract")
        out.append(f"duplicate timestamps ({_rows(dup, ts)}){hint}")
    t = key["t"].to_numpy()
    if contract is None:
        back = np.zeros(len(t), dtype=bool)
        back[1:] = np.diff(t) < 0
    else:
        # previous row of the same contract, found by a stable sort on the contract
        order = np.argsort(pd.factorize(contract)[0], kind="stable")
        same = np.zeros(len(t), dtype=bool)
        same[1:] = contract[order][1:] == contract[order][:-1]
        step = np.zeros(len(t), dtype=np.int64)
        step[1:] = np.diff(t[order])
        back = np.zeros(len(t), dtype=bool)
        back[order] = same & (step < 0)
    if back.any() and not sort:
        out.append(f"timestamps not increasing ({_rows(back, ts)}); set data.sort=true to sort them")
    return out
