"""One pooled run of several files against each file's own run, over several test periods, paired by timestamp.

    python scripts/pooled_vs_single.py [--files NAME=CSV ...] [--ends 2026-02-10T23:00Z ... none] [--seeds 42 43 44]
                                       [--no-cross] [--jobs 2] [--out DIR] [key=value ...]
    python scripts/pooled_vs_single.py --family 4 [--data-seeds 7 8 9] [--seeds 42] [--jobs 2] [key=value ...]

A single test period of a few days decides little (a pooled run can win one and lose the next by more than its
interval). Each end cuts every file at that time (UTC; 'none' keeps the whole files): a fold of the files' bars
before it, split as `python run.py` splits them, so its test period is the last days before the cut. Per fold
and seed: `python run.py data=ohlcv 'data.path={NAME:CSV,...}' data.cross_asset=true` (the pooled run) and
`python run.py data=ohlcv data.path=CSV` per file (the single runs), both with the overrides given, in
OUT/runs/<fold>/seed<seed>/{pooled,NAME}; a run whose metrics.json exists is reused. Table (stdout and
OUT/pooled_vs_single.md): each instrument's test pinball in both, and the pooled minus single loss difference
paired by timestamp (mean over horizons) with its circular-block-bootstrap 95% interval, per instrument and for
the mean over instruments (the timestamps all share); then, per seed, the same difference over all folds at once
(their test rows end to end: the folds' test periods are disjoint, so one interval covers them all). Defaults: the
four 2026 E-mini files of ../shared/data/real, three folds ending Feb 10, Feb 17 and Feb 27 (the whole files).

--family N: the synthetic family of N markets instead of files (`python run.py data.synthetic.instruments=N
data.synthetic.seed=D data.cross_asset=true` against `... data.synthetic.member=j`), one fold per independent draw
of the family (--data-seeds), with each instrument's oracle gap closed and the oracle's own loss difference to the
single run, paired the same way: the most any forecaster can gain over the single run on those rows (a pooled gain
can be beyond noise only where the oracle's is). It reads the test splits: a measurement, not a way to choose
settings.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from omegaconf import OmegaConf

from migt_train.data import load_market
from migt_train.evaluation.comparison import circular_block_bootstrap, per_sample_loss

ROOT = Path(__file__).resolve().parents[1]
REAL = ROOT.parent / "shared" / "data" / "real"
EMINIS = [f"{n}={REAL}/{n.lower()}_1m_2026-01-20_2026-02-28.csv" for n in ("NQ", "ES", "YM", "RTY")]
WHOLE = "at the files' end"
ENDS = ["2026-02-10T23:00Z", "2026-02-17T23:00Z", "none"]  # 18:00 ET: a session's start


def read_json(path: Path) -> dict:
    return json.loads(Path(path).read_text())


def _fail(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


def _files(specs: list[str]) -> dict[str, Path]:
    files = {}
    for spec in specs:
        name, sep, path = spec.partition("=")
        if not sep or not name or not path:
            _fail(f"--files {spec!r}: expected NAME=CSV")
        if name in files:
            _fail(f"--files: {name} named twice")
        if not Path(path).is_file():
            _fail(f"--files {name}: no such file {path}")
        files[name] = Path(path).resolve()
    if len(files) < 2:
        _fail("--files: a pooled run needs at least two files")
    return files


def _cut(files: dict[str, Path], end: str, folder: Path) -> dict[str, Path]:
    """Each file's rows before `end` (UTC), written once into folder; 'none' = the files as they are."""
    if end == "none":
        return files
    try:
        cut = pd.Timestamp(end)
    except ValueError:
        _fail(f"--ends {end!r}: not a date/time")
    cut = cut.tz_localize("UTC") if cut.tzinfo is None else cut
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for name, path in files.items():
        target = folder / f"{name}.csv"
        if not target.exists():
            frame = pd.read_csv(path)
            if "timestamp" not in frame:
                _fail(f"{path}: no 'timestamp' column to cut at {end}")
            stamps = pd.to_datetime(frame["timestamp"], utc=True, errors="coerce")
            if stamps.isna().any():
                _fail(f"{path}: row {int(np.flatnonzero(stamps.isna())[0]) + 2} has a timestamp that does not parse")
            kept = frame[(stamps < cut).to_numpy()]
            if kept.empty:
                _fail(f"{path}: no bars before {end}")
            kept.to_csv(target.with_suffix(".tmp"), index=False)
            target.with_suffix(".tmp").replace(target)
        out[name] = target
    return out


def _run(run_dir: Path, overrides: list[str], env: dict[str, str]) -> dict:
    """One `python run.py` (reused where its metrics.json exists) -> its metrics.json."""
    metrics = run_dir / "metrics.json"
    if not metrics.exists():
        started = time.time()
        cmd = [sys.executable, str(ROOT / "run.py"), *overrides, f"hydra.run.dir={run_dir}"]
        done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
        if done.returncode:
            tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["(no output)"]
            _fail(f"run {run_dir} failed (exit {done.returncode}): {tail[0]}")
        print(f"  {run_dir.relative_to(run_dir.parents[2])}: {time.time() - started:.0f} s", flush=True)
    return read_json(metrics)


def _utc(stamps: Any) -> pd.DatetimeIndex:
    """Times as a UTC index (naive ones read as UTC), so a run's predictions and an oracle pair by timestamp."""
    index = pd.DatetimeIndex(stamps)
    return index.tz_localize("UTC") if index.tz is None else index.tz_convert("UTC")


def _losses(predictions: pd.DataFrame, levels: list[float]) -> pd.Series:
    """Pinball loss per forecast origin (timestamp), the mean over quantiles and horizons."""
    q = torch.tensor(predictions[[f"q_{lv}" for lv in levels]].to_numpy())[:, None]  # a row per (origin, horizon)
    loss = per_sample_loss(q, torch.tensor(predictions["target"].to_numpy())[:, None], levels)[:, 0]
    return pd.Series(loss, index=_utc(predictions["timestamp"])).groupby(level=0).mean()


def _oracle_losses(run_dir: Path, levels: list[float]) -> pd.Series:
    """The run's market's oracle (a synthetic market's true conditional quantiles) scored as _losses scores the run's
    predictions: pinball per test origin, the mean over quantiles and horizons."""
    data = load_market(OmegaConf.load(run_dir / "config.yaml").data)
    rows = data.splits["test"].numpy()
    q = torch.from_numpy(np.asarray(data.oracle.quantiles(rows, levels)))
    return pd.Series(per_sample_loss(q, data.targets[rows], levels).mean(axis=1), index=_utc(data.timestamps[rows]))


def _paired(diff: np.ndarray, block: int) -> str:
    lo, hi = circular_block_bootstrap(diff * 1e4, block)
    return f"{diff.mean() * 1e4:+.4f} [{float(lo):+.3f}, {float(hi):+.3f}]"


def _gaps(pooled: dict, single: dict) -> str:
    """' | gap single -> pooled' where the runs know an oracle (the synthetic family), else ''."""
    a, b = pooled.get("oracle_gap_closed"), single.get("oracle_gap_closed")
    return "" if a is None or b is None else f" | {b:.3f} -> {a:.3f}"


def compare(run: Path, names: list[str]) -> tuple[list[str], float, float, dict[str, pd.Series]]:
    """Rows of the table for one fold and seed, the pooled and single means over instruments (x1e-4), and the
    paired differences per origin (per instrument and 'mean', indexed by timestamp)."""
    pooled = read_json(run / "pooled" / "metrics.json")
    levels, block = pooled["levels"], max(pooled["horizon_bars"])
    pooled_pred = pd.read_parquet(run / "pooled" / "predictions.parquet")
    rows, diffs, ceilings, means = [], [], [], np.zeros(2)
    for name in names:
        single = read_json(run / name / "metrics.json")
        a, b = pooled["per_instrument"][name]["test"]["pinball_loss"], single["test"]["pinball_loss"]
        alone = _losses(pd.read_parquet(run / name / "predictions.parquet"), levels)
        d = (_losses(pooled_pred[pooled_pred["instrument"] == name], levels) - alone).dropna()
        diffs.append(d.rename(name))
        means += (a * 1e4, b * 1e4)
        gap = _gaps(pooled["per_instrument"][name], single)
        if single.get("oracle"):  # a synthetic market (files: null): what its oracle gains over the single run
            ceilings.append((_oracle_losses(run / name, levels) - alone).dropna().rename(name))
            gap += f" | {_paired(ceilings[-1].to_numpy(), block)}"
        rows.append(f"| {name} | {b * 1e4:.4f} | {a * 1e4:.4f} | {(a / b - 1) * 100:+.2f}% | {_paired(d.to_numpy(), block)}{gap} |")
    both = pd.concat(diffs, axis=1).dropna().mean(axis=1)
    means /= len(names)
    ceiling = f" | | {_paired(pd.concat(ceilings, axis=1).dropna().mean(axis=1).to_numpy(), block)}" if ceilings else ""
    rows.append(f"| mean | {means[1]:.4f} | {means[0]:.4f} | {(means[0] / means[1] - 1) * 100:+.2f}% | "
                f"{_paired(both.to_numpy(), block)}{ceiling} |")
    return rows, float(means[0]), float(means[1]), {**{d.name: d for d in diffs}, "mean": both}


def over_folds(per_fold: list[dict[str, pd.Series]], block: int) -> list[str]:
    """Rows: each instrument's (and the mean's) pooled - single difference over the folds' test rows end to end."""
    return [f"| {name} | {_paired(np.concatenate([d[name].to_numpy() for d in per_fold]), block)} |" for name in per_fold[0]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--files", nargs="+", default=EMINIS, metavar="NAME=CSV")
    parser.add_argument("--ends", nargs="+", default=ENDS, metavar="END")
    parser.add_argument("--seeds", nargs="+", type=int, default=[42, 43, 44])
    parser.add_argument("--no-cross", action="store_true", help="the pooled run without data.cross_asset")
    parser.add_argument("--family", type=int, default=0, metavar="N",
                        help="the synthetic family of N markets instead of --files (folds: --data-seeds)")
    parser.add_argument("--data-seeds", nargs="+", type=int, default=[7, 8, 9], metavar="D",
                        help="with --family: the independent draws of the family (data.synthetic.seed)")
    parser.add_argument("--jobs", type=int, default=1, help="runs at once (each gets cores / jobs threads)")
    parser.add_argument("--out", type=Path, default=ROOT / "outputs" / "pooled_vs_single")
    parser.add_argument("overrides", nargs="*", metavar="key=value")
    args = parser.parse_args()
    out = args.out.resolve()
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // max(args.jobs, 1))))
    cross = [] if args.no_cross else ["data.cross_asset=true"]
    # fold name -> (what it is, the pooled run's overrides, {instrument: its single run's overrides})
    folds: dict[str, tuple[str, list[str], dict[str, list[str]]]] = {}
    if args.family:
        if args.family < 2:
            _fail(f"--family {args.family}: a pooled run needs at least two markets")
        if args.files != EMINIS or args.ends != ENDS:
            _fail("--family generates its markets: --files and --ends are for files")
        names = [f"syn{j}" for j in range(args.family)]
        for d in args.data_seeds:
            family = [f"data.synthetic.instruments={args.family}", f"data.synthetic.seed={d}"]
            folds[f"family_seed{d}"] = (f"family draw data.synthetic.seed={d}", [*family, *cross],
                                        {n: [*family, f"data.synthetic.member={j}"] for j, n in enumerate(names)})
    else:
        files = _files(args.files)
        names = list(files)
        for end in args.ends:
            paths = _cut(files, end, out / "data" / end.replace(":", ""))
            mapping = "{" + ",".join(f"{n}:{p}" for n, p in paths.items()) + "}"
            folds[end.replace(":", "")] = (f"fold ending {WHOLE if end == 'none' else end}",
                                           ["data=ohlcv", f"data.path={mapping}", *cross],
                                           {n: ["data=ohlcv", f"data.path={p}"] for n, p in paths.items()})
    jobs = []
    for fold, (_, pooled, singles) in folds.items():
        for seed in args.seeds:
            run, both = out / "runs" / fold / f"seed{seed}", [f"seed={seed}", *args.overrides]
            jobs.append((run / "pooled", [*pooled, *both]))
            jobs += [(run / n, [*o, *both]) for n, o in singles.items()]
    print(f"{len(jobs)} runs in {out / 'runs'} ({args.jobs} at a time)", flush=True)
    with ThreadPoolExecutor(max(args.jobs, 1)) as pool:
        list(pool.map(lambda job: _run(job[0], job[1], env), jobs))

    lines = [f"Pooled{'' if args.no_cross else ' + cross inputs'} vs single runs, test pinball x1e-4; "
             f"difference pooled - single paired by timestamp, 95% CI (overrides: {' '.join(args.overrides) or 'none'})"]
    totals, diffs, block = [], {seed: [] for seed in args.seeds}, 1
    gap_head = " gap closed, single -> pooled | oracle - single [95% CI] |" if args.family else ""
    for fold, (title, _, _) in folds.items():
        for seed in args.seeds:
            run = out / "runs" / fold / f"seed{seed}"
            rows, p, s, d = compare(run, names)
            block = max(read_json(run / "pooled" / "metrics.json")["horizon_bars"])
            totals.append((p, s))
            diffs[seed].append(d)
            lines += ["", f"### {title}, seed {seed}", "",
                      f"| instrument | single | pooled | change | pooled - single [95% CI] |{gap_head}",
                      f"|---|---|---|---|---|{'---|---|' if gap_head else ''}", *rows]
    if len(folds) > 1:
        for seed in args.seeds:
            lines += ["", f"### all {len(folds)} folds' test rows at once, seed {seed}", "",
                      "| instrument | pooled - single [95% CI] |", "|---|---|", *over_folds(diffs[seed], block)]
    p, s = np.mean(totals, axis=0)
    wins = sum(a < b for a, b in totals)
    lines += ["", f"Over {len(totals)} folds x seeds: pooled mean {p:.4f}, single {s:.4f} ({(p / s - 1) * 100:+.2f}%); "
                  f"pooled better in {wins} of {len(totals)}."]
    text = "\n".join(lines)
    (out / "pooled_vs_single.md").write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
