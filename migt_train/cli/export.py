"""`python -m migt_train.export OUT.csv|OUT.parquet [overrides ...] [--force]`: write the bars of the
configured data source as `timestamp, open, high, low, close, volume` (plus `symbol` for a file of contracts).

The config is the real composed Hydra config (conf/, the same defaults as `python run.py`) with the
given overrides, e.g. `data.synthetic.n_days=300` or `data=ohlcv data.path=bars.parquet`, and the bars go
through the path training reads them by (data.timezone, data.timestamp_label, data.bar_minutes, the front
contract across rolls or data.symbol, data.session_end, segments at long gaps), so the file holds exactly
the bars a run with those overrides reads (before feature warm-up): bars of data.bar_minutes labelled by their
start, in UTC: tz-aware ISO 8601 text in CSV (`2024-01-01T23:00:00+00:00`), a tz-aware column in parquet.
A file of several contracts gives the front-contract series with each bar's contract in `symbol`.
Reading the file back with `data=ohlcv data.path=OUT` (and the same session keys) gives the same market.
The file is written atomically (temp file + rename); an existing file is kept unless --force. Several
instruments (data.path a map or list, data.synthetic.instruments > 1) are written one file each, OUT_<name>.csv.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import pandas as pd

from migt_train.cli.common import add_overrides, parse, parser, run_main
from migt_train.config.compose import compose_config
from migt_train.errors import MigtError

FORMATS = {".csv": "csv", ".parquet": "parquet"}


def export_bars(out: str | Path, overrides: Sequence[str] = (), force: bool = False) -> tuple[Path, int]:
    """Write the configured bars to `out` (.csv or .parquet); returns (path, number of bars). Several
    instruments (data.path a map or list, data.synthetic.instruments > 1): export_instruments."""
    written = export_instruments(out, overrides, force)
    if len(written) > 1:
        raise MigtError(f"{out}: the config names {len(written)} instruments; they were written to "
                        f"{', '.join(str(p) for p, _ in written)}")
    return written[0]


def export_instruments(out: str | Path, overrides: Sequence[str] = (), force: bool = False) -> list[tuple[Path, int]]:
    """Write the configured bars: to `out` for one instrument, else one file per instrument, OUT_<name>.csv;
    returns [(path, number of bars)]."""
    from migt_train.data.instruments import instrument_series

    out = Path(out)
    if FORMATS.get(out.suffix.lower()) is None:
        raise MigtError(f"{out}: unknown file type {out.suffix!r}; use .csv or .parquet")
    cfg = compose_config(overrides)
    per = instrument_series(cfg.data)
    paths = {name: out if name is None else out.with_name(f"{out.stem}_{name}{out.suffix}") for name in per}
    taken = [str(p) for p in paths.values() if p.exists()]
    if taken and not force:
        raise MigtError(f"{', '.join(taken)}: exist{'s' if len(taken) == 1 else ''}; pass --force to replace")
    return [(_write(paths[name], series), len(series.bars)) for name, series in per.items()]


def _write(out: Path, series: Any) -> Path:
    """One instrument's SeriesBars -> `out`."""
    from migt_train.utils.io import atomic_write

    fmt = FORMATS[out.suffix.lower()]
    bars = series.bars[["timestamp", "open", "high", "low", "close", "volume"]].copy()
    if series.contract is not None:  # read back, the front series' rolls fall on the same days
        bars["symbol"] = series.contract
    ts = pd.to_datetime(bars["timestamp"]).dt.tz_localize("UTC")
    if fmt == "csv":
        # every timestamp is UTC, so the offset is the literal +00:00 (vectorised, no per-row isoformat)
        frac = ".%f" if (ts.dt.microsecond != 0).any() else ""
        bars["timestamp"] = ts.dt.strftime(f"%Y-%m-%dT%H:%M:%S{frac}+00:00")
        atomic_write(out, lambda p: bars.to_csv(p, index=False))
    else:
        bars["timestamp"] = ts
        atomic_write(out, lambda p: bars.to_parquet(p, index=False, engine="pyarrow"))
    return out


def main(argv: Sequence[str] | None = None) -> int:
    p = parser("export", __doc__)
    p.add_argument("out", metavar="OUT", help="the file to write: .csv or .parquet")
    add_overrides(p, "data.synthetic.n_days=300 or data=ohlcv data.path=bars.parquet")
    p.add_argument("--force", action="store_true", help="replace OUT when it exists")
    args = parse(p, argv)
    if isinstance(args, int):
        return args

    def body() -> int:
        for path, n in export_instruments(args.out, args.overrides, args.force):
            print(f"{path}: {n} bars")
        return 0

    return run_main(body)
