"""`python -m migt_train.predict <run dir> [key=value ...] [--last N | --all]`: forecasts from the latest bars.

The run's best checkpoint on a file (by default the run's own data source; `data.path=today.csv` for
another), forecasting from the latest bar (`--last N`: the last N bars, `--all`: every bar with a full
lookback). Writes <run dir>/forecasts/<timestamp>/forecasts.parquet (the predictions.parquet columns plus
close and price_q_<level>) and prints the latest forecast as a table of horizon x level, in price and %.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from migt_train.errors import MigtError

QUANTILE_PREFIX = "q_"


def latest_table(forecasts: pd.DataFrame) -> str:
    """The last forecast origin as text: one line per horizon, each level as price (change %)."""
    last = forecasts[forecasts["row"] == forecasts["row"].max()]
    levels = [c[len(QUANTILE_PREFIX):] for c in last.columns if c.startswith(QUANTILE_PREFIX)]
    close = float(last["close"].iloc[0])
    ts = pd.Timestamp(last["timestamp"].iloc[0])
    lines = [f"forecast from the bar starting {ts:%Y-%m-%d %H:%M %Z} (close {close:,.6g})"]
    header = f"{'horizon':<8}" + "".join(f"{'q ' + lv:>22}" for lv in levels)
    lines.append(header)
    for _, r in last.iterrows():
        cells = []
        for lv in levels:
            price = float(r[f"price_{QUANTILE_PREFIX}{lv}"])
            pct = (np.exp(float(r[f"{QUANTILE_PREFIX}{lv}"])) - 1.0) * 100.0
            cells.append(f"{price:>12,.6g} ({pct:+.2f}%)")
        lines.append(f"{r['horizon']:<8}" + "".join(f"{c:>22}" for c in cells))
    return "\n".join(lines)


def predict_run(run_dir: str | Path, overrides: Sequence[str] = (), last: int | None = 1) -> tuple[Path, pd.DataFrame]:
    """Library form of the CLI: (forecast dir, forecasts)."""
    from omegaconf import OmegaConf

    from migt_train.io import atomic_write, write_text
    from migt_train.runs import load_run

    run = load_run(run_dir, overrides)
    forecasts = run.predict(None, last=last)
    from migt_train.run_dir import fresh_subdir

    out = fresh_subdir(Path(run_dir), "forecasts")
    write_text(out / "config.yaml", OmegaConf.to_yaml(run.cfg))
    atomic_write(out / "forecasts.parquet", lambda p: forecasts.to_parquet(p, index=False, engine="pyarrow"))
    return out, forecasts


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m migt_train.predict", description=__doc__.splitlines()[0])
    parser.add_argument("run_dir")
    parser.add_argument("overrides", nargs="*", help="key=value applied to the run's config.yaml, e.g. data.path=today.csv")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--last", type=int, default=1, metavar="N", help="forecast from the last N bars (default 1)")
    group.add_argument("--all", action="store_true", help="forecast from every bar with a full lookback")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        if not args.all and args.last < 1:
            raise MigtError(f"--last: must be >= 1 (got {args.last})")
        out, forecasts = predict_run(args.run_dir, args.overrides, None if args.all else args.last)
    except MigtError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"{out / 'forecasts.parquet'} ({forecasts['row'].nunique()} bars x {forecasts['horizon'].nunique()} horizons)")
    print(latest_table(forecasts))
    return 0


if __name__ == "__main__":
    sys.exit(main())
