"""`python -m migt_train.summarize <dir> [--json]`: one row per run found under a directory, grouped by data
set (val losses on different data are not comparable), best val loss first within each group."""

from __future__ import annotations

import hashlib
import json
import math
import sys
from pathlib import Path
from typing import Any

import yaml

from migt_train.cli.common import parse, parser as cli_parser
from migt_train.run.record import effective_status, read_status


def _load_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _overrides(run_dir: Path) -> str:
    try:
        items = yaml.safe_load((run_dir / ".hydra" / "overrides.yaml").read_text()) or []
    except (OSError, yaml.YAMLError):
        return ""
    return " ".join(str(o) for o in items if not str(o).startswith("hparams_search="))


def _config(run_dir: Path) -> dict:
    try:
        config = yaml.safe_load((run_dir / "config.yaml").read_text()) or {}
    except (OSError, yaml.YAMLError):
        return {}
    return config if isinstance(config, dict) else {}


# data.* keys that change the model's inputs, not the bars, targets or rows a run is scored on: runs that
# differ only in these are on the same data set (comparing them is the point; e.g. a pooled run with and without
# the other instruments' bars); vol_anchor_leverage: in older runs' configs only (removed)
INPUT_ONLY_KEYS = ("cache_dir", "vol_anchor", "vol_anchor_leverage", "event_calendar", "cross_asset")


def data_set(config: dict) -> tuple[str, str]:
    """(label, key) of the data set a run is scored on: data.source + data.path, or the synthetic market's
    config, with the bar size, horizons, window and split that set its val rows. The key is a digest;
    the label is for reading (summarize_rows adds the digest where one label covers several data sets)."""
    data = config.get("data")
    if not isinstance(data, dict):
        return "?", "?"
    kept = {k: v for k, v in data.items() if k not in INPUT_ONLY_KEYS}
    if data.get("source") == "synthetic":
        kept.pop("path", None)
        syn = data.get("synthetic") or {}
        label = f"synthetic {syn.get('n_days', '?')}d seed {syn.get('seed', '?')}"
        if (syn.get("instruments") or 1) > 1:  # a family: all of it, or one member alone
            member = syn.get("member")
            label += f" x{syn['instruments']}" if member is None else f" syn{member}"
    else:
        kept.pop("synthetic", None)
        path = data.get("path")
        if isinstance(path, dict):  # several instruments: their names
            label = "+".join(str(n) for n in path)
        elif isinstance(path, list):
            label = "+".join(Path(str(p)).stem for p in path)
        else:
            label = Path(str(path)).name
    label += f" {data.get('bar_minutes', '?')}m"
    key = hashlib.sha256(json.dumps(kept, sort_keys=True, default=str).encode()).hexdigest()[:6]
    return label, key


def run_row(run_dir: Path, root: Path) -> dict[str, Any]:
    metrics = _load_json(run_dir / "metrics.json")
    config = _config(run_dir)
    data_label, data_key = data_set(config)
    history = (_load_json(run_dir / "history.json") or {}).get("epochs", [])
    # "running" whose process is gone (kill -9, power loss) shows as "stale"
    status = effective_status(read_status(run_dir))
    if metrics is None and (run_dir / "metrics.json").exists():  # cut short (a full disk, a copy interrupted)
        status = "broken (metrics.json unreadable)"
    metrics = metrics if isinstance(metrics, dict) else {}
    val_losses = [e["val_loss"] for e in history if e.get("val_loss") is not None]
    best_val = metrics.get("best_val_loss", min(val_losses) if val_losses else None)
    scored = [e for e in history if e.get("val_loss") is not None]
    # the kept epoch (best.pt): metrics.json's; a run still training shows its history's lowest so far
    best_epoch = metrics.get("best_epoch", min(scored, key=lambda e: e["val_loss"])["epoch"] if scored else None)
    test = metrics.get("test", {})
    kept = next((e for e in scored if e.get("epoch") == best_epoch), {})
    return {
        "run": str(run_dir.relative_to(root)) if run_dir != root else ".",
        "data": data_label,
        "data_key": data_key,
        "tag": config.get("tag"),
        "overrides": _overrides(run_dir),
        "best_val_loss": best_val,
        # the kept epoch's val pinball, in the units of test_pinball (best_val_loss is the standardised training loss)
        "val_pinball": (kept.get("val_metrics") or {}).get("pinball_loss"),
        "test_pinball": test.get("pinball_loss"),
        "calibration_error": test.get("calibration_error"),
        # the share of exactly calibrated forecasts on the same rows that score at least that error
        "calibration_p": (metrics.get("calibration_noise") or {}).get("p_value"),
        "skill_vs_climatology": metrics.get("skill_vs_climatology"),
        "skill_vs_best_baseline": metrics.get("skill_vs_best_baseline"),
        "best_baseline": metrics.get("best_baseline"),
        # trained epochs (history.json's epoch 0 is the initial weights, validated, not trained)
        "epochs": metrics.get("epochs_run", sum(1 for e in history if e.get("epoch", 1) >= 1)),
        "best_epoch": best_epoch,
        "status": status,
        # a pooled run: each instrument's test figures (metrics.json per_instrument), None for one instrument
        "per_instrument": {name: _scores(block) for name, block in metrics["per_instrument"].items()}
        if isinstance(metrics.get("per_instrument"), dict) else None,
    }


def _scores(block: dict[str, Any]) -> dict[str, Any]:
    """An instrument's row of a pooled run: the run's test columns, from its per_instrument block."""
    test = block.get("test") or {}
    return {"val_pinball": (block.get("val") or {}).get("pinball_loss"), "test_pinball": test.get("pinball_loss"),
            "calibration_error": test.get("calibration_error"),
            "calibration_p": (block.get("calibration_noise") or {}).get("p_value"),
            "skill_vs_climatology": block.get("skill_vs_climatology"),
            "skill_vs_best_baseline": block.get("skill_vs_best_baseline"), "best_baseline": block.get("best_baseline")}


def find_runs(root: Path) -> list[Path]:
    """Run directories: those holding Hydra's .hydra/ and our config.yaml."""
    return sorted(p.parent for p in root.rglob("config.yaml") if (p.parent / ".hydra").is_dir())


def summarize(root: Path) -> list[dict[str, Any]]:
    """Rows grouped by data set (by label), best val loss first within a group; runs without one last."""
    rows = [run_row(d, root) for d in find_runs(root)]
    keys_of: dict[str, set[str]] = {}
    for r in rows:
        keys_of.setdefault(r["data"], set()).add(r["data_key"])
    for r in rows:  # one label, several data sets (other horizons, split, market seed...): tell them apart
        if len(keys_of[r["data"]]) > 1:
            r["data"] = f"{r['data']} #{r['data_key']}"
    unscored = lambda r: r["best_val_loss"] is None or not math.isfinite(r["best_val_loss"])
    return sorted(rows, key=lambda r: (r["data"], unscored(r), r["best_val_loss"] or 0.0))


def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.6g}"
    return str(v)


def format_table(rows: list[dict[str, Any]]) -> str:
    cols = ["data", "run", "tag", "status", "epochs", "best_epoch", "best_val_loss", "val_pinball", "test_pinball",
            "calibration_error", "calibration_p", "skill_vs_climatology", "skill_vs_best_baseline", "best_baseline",
            "overrides"]
    cells = []
    for r in rows:
        cells.append([_fmt(r[c]) for c in cols])
        for name, scores in (r.get("per_instrument") or {}).items():  # a pooled run: one line per instrument below it
            cells.append([f"  {name}" if c == "run" else _fmt(scores.get(c)) for c in cols])
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(cols)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(cols, widths))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths)) for row in cells]
    return "\n".join(line.rstrip() for line in lines)


def main(argv: list[str] | None = None) -> int:
    parser = cli_parser("summarize", __doc__)
    parser.add_argument("directory", nargs="?", default="outputs", type=Path)
    parser.add_argument("--json", action="store_true", help="print the rows as JSON")
    args = parse(parser, argv)
    if isinstance(args, int):
        return args
    if not args.directory.is_dir():
        print(f"error: {args.directory} is not a directory", file=sys.stderr)
        return 2
    rows = summarize(args.directory)
    if args.json:
        print(json.dumps(rows, indent=2))
    elif not rows:
        print(f"no runs under {args.directory}")
    else:
        print(format_table(rows))
    return 0
