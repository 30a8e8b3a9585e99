"""`python -m migt_train.export OUT.csv|OUT.parquet [overrides ...]`: write the bars of the configured
data source as `timestamp, open, high, low, close, volume`.

The config is the real composed Hydra config (conf/, the same defaults as `python run.py`) with the
given overrides, e.g. `data.synthetic.n_days=300` or `data=ohlcv data.path=bars.parquet`, so the
file holds exactly the bars a run with those overrides reads (before feature warm-up). Timestamps
are UTC: tz-aware ISO 8601 text in CSV (`2024-01-01T23:00:00+00:00`), a tz-aware column in parquet.
Reading the file back with `data=ohlcv data.path=OUT` gives the same features. The file is written
atomically (temp file + rename).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Sequence

import pandas as pd

from migt_train.errors import MigtError

USAGE = "usage: python -m migt_train.export OUT.csv|OUT.parquet [key=value ...]"
CONF_DIR = Path(__file__).resolve().parent.parent / "conf"
COLUMNS = ["timestamp", "open", "high", "low", "close", "volume"]
FORMATS = {".csv": "csv", ".parquet": "parquet"}


def compose_config(overrides: Sequence[str]) -> Any:
    """The composed config of `python run.py <overrides>`; a bad override is a MigtError."""
    from hydra import compose, initialize_config_dir

    import migt_train.config  # noqa: F401  (the ${migt.*} resolvers)

    if not CONF_DIR.is_dir():
        raise MigtError(f"{CONF_DIR}: config directory not found")
    try:
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            return compose(config_name="config", overrides=list(overrides))
    except Exception as e:  # Hydra raises several unrelated types for bad overrides
        raise MigtError(f"overrides {' '.join(overrides)}: {e}".replace("\n", " ")) from None


def configured_bars(data_cfg: Any) -> pd.DataFrame:
    """The raw bars of the configured source (synthetic market or the user's file), validated as
    load_market validates them: timestamp (naive UTC), open, high, low, close, volume."""
    from migt_train.data import build
    from migt_train.data.ohlcv import read_ohlcv

    build.check_data_config(data_cfg)
    s = build._settings(data_cfg)
    if s.source == "synthetic":
        bars = build.synthetic_bars(build.synthetic_config(data_cfg.get("synthetic")), s)
    else:
        bars = read_ohlcv(Path(str(s.path)).expanduser(), sort=s.sort)
    return bars[COLUMNS]


def export_bars(out: str | Path, overrides: Sequence[str] = ()) -> tuple[Path, int]:
    """Write the configured bars to `out` (.csv or .parquet); returns (path, number of bars)."""
    from migt_train.io import atomic_write

    out = Path(out)
    fmt = FORMATS.get(out.suffix.lower())
    if fmt is None:
        raise MigtError(f"{out}: unknown file type {out.suffix!r}; use .csv or .parquet")
    cfg = compose_config(overrides)
    bars = configured_bars(cfg.data).copy()
    ts = pd.to_datetime(bars["timestamp"]).dt.tz_localize("UTC")
    if fmt == "csv":
        # every timestamp is UTC, so the offset is the literal +00:00 (vectorised, no per-row isoformat)
        frac = ".%f" if (ts.dt.microsecond != 0).any() else ""
        bars["timestamp"] = ts.dt.strftime(f"%Y-%m-%dT%H:%M:%S{frac}+00:00")
        atomic_write(out, lambda p: bars.to_csv(p, index=False))
    else:
        bars["timestamp"] = ts
        atomic_write(out, lambda p: bars.to_parquet(p, index=False, engine="pyarrow"))
    return out, len(bars)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print(USAGE, file=sys.stdout if args else sys.stderr)
        return 0 if args else 2
    try:
        path, n = export_bars(args[0], args[1:])
    except MigtError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"{path}: {n} bars")
    return 0


if __name__ == "__main__":
    sys.exit(main())
