"""`python -m migt_train.predict <run dir> [key=value ...] [--last N | --all] [--partial] [--out DIR]`: forecasts
from the latest bars.

The run's best checkpoint on a file (by default the run's own data source; `data.path=today.csv` for
another), forecasting from the latest complete bar (`--last N`: the last N bars, `--all`: every bar with a full
lookback; `--partial`: a last bar still forming too, flagged). Writes <run dir>/forecasts/<timestamp>/ (or
`--out DIR`) forecasts.parquet (the predictions.parquet columns plus close, price_q_<level> and partial) and
prints the latest forecast as a table of horizon x level, in price and %. The run's bar size, horizons and
lookback cannot be overridden. A pooled run forecasts each of its instruments' latest bars
(`data.path={ES:today_es.csv}` for some of them).
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from migt_train.cli.common import add_overrides, parse, parser, quiet_logging, run_main
from migt_train.errors import MigtError

QUANTILE_PREFIX = "q_"


def latest_table(forecasts: pd.DataFrame) -> str:
    """The last forecast origin as text: one line per horizon, each level as price (change %); a pooled run's
    forecasts (an `instrument` column) give one such table per instrument."""
    if "instrument" in forecasts:
        return "\n\n".join(f"{name}: " + latest_table(part.drop(columns="instrument"))
                            for name, part in forecasts.groupby("instrument", sort=False))
    last = forecasts[forecasts["row"] == forecasts["row"].max()]
    levels = [c[len(QUANTILE_PREFIX):] for c in last.columns if c.startswith(QUANTILE_PREFIX)]
    close = float(last["close"].iloc[0])
    ts = pd.Timestamp(last["timestamp"].iloc[0])
    forming = ", a bar still forming (partial)" if bool(last.get("partial", pd.Series([False])).iloc[0]) else ""
    lines = [f"forecast from the bar starting {ts:%Y-%m-%d %H:%M %Z}{forming} (close {close:,.6g})"]
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


def predict_run(run_dir: str | Path, overrides: Sequence[str] = (), last: int | None = 1, partial: bool = False,
                out: str | Path | None = None) -> tuple[Path, pd.DataFrame]:
    """Library form of the CLI: (forecast dir, forecasts)."""
    from omegaconf import OmegaConf

    from migt_train.run.loaded import load_run
    from migt_train.run.record import output_dir
    from migt_train.utils.io import atomic_write, write_text

    run = load_run(run_dir, overrides)
    with output_dir(Path(run_dir), "forecasts", out) as out_dir:
        forecasts = run.predict(None, last=last, partial=partial)
        write_text(out_dir / "config.yaml", OmegaConf.to_yaml(run.cfg))
        atomic_write(out_dir / "forecasts.parquet", lambda p: forecasts.to_parquet(p, index=False, engine="pyarrow"))
    return out_dir, forecasts


def main(argv: Sequence[str] | None = None) -> int:
    p = parser("predict", __doc__)
    p.add_argument("run_dir", help="a run directory (config.yaml + checkpoints/best.pt)")
    add_overrides(p, "data.path=today.csv (applied to the run's config.yaml)")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--last", type=int, default=1, metavar="N", help="forecast from the last N bars (default 1)")
    group.add_argument("--all", action="store_true", help="forecast from every bar with a full lookback")
    p.add_argument("--partial", action="store_true", help="also forecast from a last bar still forming (flagged in "
                   "the output's partial column); by default the latest complete bar is the last origin")
    p.add_argument("--out", metavar="DIR", help="write into DIR (new or empty) instead of <run dir>/forecasts/<time>/")
    args = parse(p, argv)
    if isinstance(args, int):
        return args
    quiet_logging()

    def body() -> int:
        if not args.all and args.last < 1:
            raise MigtError(f"--last: must be >= 1 (got {args.last})")
        out, forecasts = predict_run(args.run_dir, args.overrides, None if args.all else args.last, args.partial,
                                     args.out)
        what = f"{forecasts['instrument'].nunique()} instruments, " if "instrument" in forecasts else ""
        print(f"{out / 'forecasts.parquet'} ({what}{forecasts['row'].nunique()} bars x {forecasts['horizon'].nunique()} horizons)")
        print(latest_table(forecasts))
        return 0

    return run_main(body)
