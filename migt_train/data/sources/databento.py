"""Databento OHLCV exports: `.dbn` / `.dbn.zst` through the `databento` package (an optional extra), and the
column conventions of its CSV/parquet exports (ts_event, rtype, fixed-point prices)."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from migt_train.errors import MigtError

# Databento prices are int64 in units of 1e-9 when not converted ("pretty") on export
FIXED_POINT_SCALE = 1e-9
FIXED_POINT_FLOOR = 10**6
# rtype of each OHLCV schema: ohlcv-1s, -1m, -1h, -1d, -eod
OHLCV_RTYPES = {32: "ohlcv-1s", 33: "ohlcv-1m", 34: "ohlcv-1h", 35: "ohlcv-1d", 36: "ohlcv-eod"}
PRICES = ("open", "high", "low", "close")


def is_dbn(path: Path) -> bool:
    name = path.name.lower()
    return name.endswith(".dbn") or name.endswith(".dbn.zst")


def read_dbn(path: Path) -> pd.DataFrame:
    """A DBN file -> its records as a table (ts_event as a column, prices as floats, symbols mapped)."""
    try:
        import databento
    except ImportError:
        raise MigtError(f"{path}: reading .dbn files needs the databento package: pip install 'migt-train[databento]'") from None
    try:
        store = databento.DBNStore.from_file(path)
        schema = str(store.schema) if store.schema is not None else ""
        if schema and not schema.startswith("ohlcv"):
            raise MigtError(f"{path}: DBN schema {schema!r}; an OHLCV schema (ohlcv-1s/1m/1h/1d) is needed")
        with warnings.catch_warnings():  # the package's own pandas deprecations are not the user's concern
            warnings.filterwarnings("ignore", module=r"databento\b.*")
            df = store.to_df(price_type="float", pretty_ts=False, map_symbols=True)
    except MigtError:
        raise
    except Exception as exc:
        raise MigtError(f"{path}: not a readable DBN file ({type(exc).__name__}: {str(exc)[:200]})") from None
    return df.reset_index()


def apply_conventions(df: pd.DataFrame, lower: dict[str, str], source: Path) -> pd.DataFrame:
    """A Databento-style table (it has ts_event or rtype): one OHLCV rtype only, and integer prices read as
    fixed-point 1e-9. Returns the frame with prices as float64; other tables pass through unchanged."""
    if "ts_event" not in lower and "rtype" not in lower:
        return df
    if "rtype" in lower:
        rtypes = pd.unique(df[lower["rtype"]].dropna())
        unknown = [int(r) for r in rtypes if int(r) not in OHLCV_RTYPES]
        if unknown:
            raise MigtError(f"{source}: rtype {unknown} is not an OHLCV record (expected {sorted(OHLCV_RTYPES)})")
        if len(rtypes) > 1:
            names = ", ".join(OHLCV_RTYPES[int(r)] for r in sorted(rtypes))
            raise MigtError(f"{source}: several bar schemas in one file ({names}); export one")
    out = df.copy(deep=False)
    for p in PRICES:
        col = lower.get(p)
        # whole-number prices written as text ("5000") also read as integers: fixed-point prices of any
        # instrument above 0.001 are >= 1e6, pretty ones of a future or stock are far below
        if col is not None and pd.api.types.is_integer_dtype(out[col]) and out[col].abs().max() >= FIXED_POINT_FLOOR:
            out[col] = out[col].to_numpy(np.float64) * FIXED_POINT_SCALE
    return out
