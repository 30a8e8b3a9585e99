"""The benchmark table: finished runs of one preset over several data sets (and seeds) -> one row per set
and a mean over sets, with per-horizon figures, written as markdown, CSV and JSON.

Every figure is read from the runs' own files (metrics.json, status.json): the model's test pinball, the
initial weights' (a `trainer.max_epochs=0` run of the same config), the baselines', skill against
garch_t_tod (and har_gk where the metrics have it) with its paired block-bootstrap interval (metrics.json
`comparisons`), calibration, the kept epoch and the wall time. Seeds are averaged within a set (their spread is the sd over seeds); the mean
row weighs every set alike.
"""

from __future__ import annotations

import csv
import io
import json
import statistics
from pathlib import Path
from typing import Any, Mapping, Sequence

from migt_train.errors import MigtError
from migt_train.utils.io import write_json, write_text

REFERENCE = "garch_t_tod"  # the baseline skill is measured against
SECOND = "har_gk"  # shown beside it when the runs' metrics have it
# per run: (column, description) of the figures averaged over seeds and sets
COLUMNS = [
    ("model", "test pinball of the model (best.pt, as evaluated)"),
    ("initial", "test pinball of the initial weights (trainer.max_epochs=0)"),
    (REFERENCE, "test pinball of garch_t_tod"),
    (SECOND, "test pinball of har_gk"),
    ("best_baseline_loss", "test pinball of the best baseline"),
    ("skill_vs_garch", "1 - model / garch_t_tod pinball"),
    ("skill_vs_garch_lo", "its 95% paired block-bootstrap interval, low end"),
    ("skill_vs_garch_hi", "high end"),
    ("skill_vs_har", "1 - model / har_gk pinball"),
    ("skill_vs_har_lo", "its 95% interval, low end"),
    ("skill_vs_har_hi", "high end"),
    ("skill_vs_best", "1 - model / best baseline pinball"),
    ("gap_model", "oracle gap closed by the model (synthetic markets)"),
    ("gap_initial", "by the initial weights"),
    ("gap_garch", "by garch_t_tod"),
    ("calibration_error", "test calibration error of the model"),
    ("calibration_p", "share of exactly calibrated forecasts on the same rows with at least that error"),
    ("best_epoch", "the kept epoch (0 = the initial weights)"),
    ("seconds", "wall time of the training run (start to end, evaluation included)"),
    ("initial_seconds", "wall time of the initial-weights run"),
]
NUMERIC = [c for c, _ in COLUMNS]


def _read(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise MigtError(f"{path}: missing (the run did not finish)") from None
    except (OSError, ValueError) as e:
        raise MigtError(f"{path}: unreadable ({e})") from None


def _skill_interval(comparison: Mapping[str, Any], reference_loss: float) -> tuple[float, float]:
    """The skill interval from the interval of the loss difference (model - reference): skill = -d / L_ref."""
    lo, hi = comparison["ci95"]
    return -hi / reference_loss, -lo / reference_loss


def run_figures(run_dir: Path, initial_dir: Path | None) -> dict[str, Any]:
    """One finished run (and its initial-weights run) -> the table's figures, overall and per horizon; the
    seconds are the run's own (status.json: from the run's start to its end, data and evaluation included)."""
    m = _read(run_dir / "metrics.json")
    comparisons = m.get("comparisons") or {}
    if REFERENCE not in m["baselines"] or REFERENCE not in comparisons:
        raise MigtError(f"{run_dir / 'metrics.json'}: no {REFERENCE} comparison (written by an older version?)")
    base = m["baselines"]
    ref = base[REFERENCE]["pinball_loss"]
    lo, hi = _skill_interval(comparisons[REFERENCE], ref)
    har_lo, har_hi = _skill_interval(comparisons[SECOND], base[SECOND]["pinball_loss"]) if SECOND in comparisons else (None, None)
    init = _read(initial_dir / "metrics.json") if initial_dir is not None else None
    out: dict[str, Any] = {
        "model": m["test"]["pinball_loss"],
        "initial": None if init is None else init["test"]["pinball_loss"],
        REFERENCE: ref,
        SECOND: base[SECOND]["pinball_loss"] if SECOND in base else None,
        "best_baseline": m["best_baseline"],
        "best_baseline_loss": base[m["best_baseline"]]["pinball_loss"],
        "skill_vs_garch": comparisons[REFERENCE]["skill"],
        "skill_vs_garch_lo": lo,
        "skill_vs_garch_hi": hi,
        "skill_vs_har": comparisons[SECOND]["skill"] if SECOND in comparisons else None,
        "skill_vs_har_lo": har_lo,
        "skill_vs_har_hi": har_hi,
        "skill_vs_best": m["skill_vs_best_baseline"],
        "gap_model": m.get("oracle_gap_closed"),
        "gap_initial": None if init is None else init.get("oracle_gap_closed"),
        "gap_garch": base[REFERENCE].get("oracle_gap_closed"),
        "calibration_error": m["test"]["calibration_error"],
        "calibration_p": (m.get("calibration_noise") or {}).get("p_value"),
        "best_epoch": m.get("best_epoch"),
        "seconds": _read(run_dir / "status.json").get("seconds"),
        "initial_seconds": None if initial_dir is None else _read(initial_dir / "status.json").get("seconds"),
    }
    horizons = {}
    for h in m["horizons"]:
        c = comparisons[REFERENCE]["per_horizon"][h]
        ref_h = base[REFERENCE]["per_horizon"][h]["pinball_loss"]
        lo_h, hi_h = _skill_interval(c, ref_h)
        horizons[h] = {
            "model": m["test"]["per_horizon"][h]["pinball_loss"],
            "initial": None if init is None else init["test"]["per_horizon"][h]["pinball_loss"],
            REFERENCE: ref_h,
            SECOND: base[SECOND]["per_horizon"][h]["pinball_loss"] if SECOND in base else None,
            "skill_vs_garch": c["skill"], "skill_vs_garch_lo": lo_h, "skill_vs_garch_hi": hi_h,
        }
    out["per_horizon"] = horizons
    return out


def _mean(values: Sequence[Any]) -> float | None:
    xs = [float(v) for v in values if v is not None]
    return statistics.fmean(xs) if xs and len(xs) == len(values) else None


def _sd(values: Sequence[Any]) -> float | None:
    xs = [float(v) for v in values if v is not None]
    return statistics.stdev(xs) if len(xs) > 1 and len(xs) == len(values) else None


def aggregate(runs: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Runs of one set (one per seed) -> the mean of every figure, its sd over seeds, per horizon too."""
    row: dict[str, Any] = {c: _mean([r[c] for r in runs]) for c in NUMERIC}
    row["sd"] = {c: _sd([r[c] for r in runs]) for c in NUMERIC}
    names = [r["best_baseline"] for r in runs]
    row["best_baseline"] = max(set(names), key=names.count)
    row["n_seeds"] = len(runs)
    horizons = list(runs[0]["per_horizon"])
    row["per_horizon"] = {h: {k: _mean([r["per_horizon"][h][k] for r in runs]) for k in runs[0]["per_horizon"][h]}
                          for h in horizons}
    return row


def mean_over_sets(rows: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """The mean row: every set weighs the same, whatever its size or number of seeds."""
    out: dict[str, Any] = {c: _mean([r[c] for r in rows.values()]) for c in NUMERIC}
    out["sd"] = {c: _sd([r[c] for r in rows.values()]) for c in NUMERIC}  # the spread over sets
    out["best_baseline"] = "-"
    out["n_seeds"] = min(r["n_seeds"] for r in rows.values())
    common = [h for h in next(iter(rows.values()))["per_horizon"] if all(h in r["per_horizon"] for r in rows.values())]
    keys = next(iter(rows.values()))["per_horizon"][common[0]] if common else {}
    out["per_horizon"] = {h: {k: _mean([r["per_horizon"][h][k] for r in rows.values()]) for k in keys} for h in common}
    return out


def _e4(v: float | None) -> str:
    return "-" if v is None else f"{v * 1e4:.4f}"


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{100 * v:+.2f}%"


def _skill_cell(r: Mapping[str, Any], mean_row: bool, key: str = "skill_vs_garch") -> str:
    if r[key] is None:
        return "-"
    if r["n_seeds"] == 1 and not mean_row and r[f"{key}_lo"] is not None:
        return f"{_pct(r[key])} [{100 * r[f'{key}_lo']:+.2f}, {100 * r[f'{key}_hi']:+.2f}]"
    sd = r["sd"][key]  # over seeds; over sets in the mean row
    return _pct(r[key]) + ("" if sd is None else f" ± {100 * sd:.2f} sd")


def _gap_cell(r: Mapping[str, Any]) -> str:
    if r["gap_model"] is None:
        return "-"
    f = lambda v: "-" if v is None else f"{v:.2f}"  # noqa: E731
    return f"{f(r['gap_model'])} / {f(r['gap_initial'])} / {f(r['gap_garch'])}"


def markdown(rows: Mapping[str, Mapping[str, Any]], mean: Mapping[str, Any], title: str) -> str:
    def fmt(v: Any, digits: str) -> str:
        return "-" if v is None else format(v, digits)

    lines = [f"## {title}", "",
             "Test pinball x1e-4. Skill vs garch_t_tod: one seed, its 95% paired block-bootstrap interval in "
             "brackets; several seeds, the sd over seeds; the mean row, the sd over sets. Gap closed: share of the "
             "climatology-to-oracle gap (model / initial weights / garch_t_tod; synthetic markets). Seconds: the "
             "training run's, start to end.", "",
             f"| set | model | initial | {REFERENCE} | {SECOND} | best baseline | skill vs GARCH | skill vs HAR "
             "| gap closed | calibration error | calibration p | best epoch | seconds |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, r in [*rows.items(), ("mean", mean)]:
        best = _e4(r["best_baseline_loss"]) if name == "mean" else f"{r['best_baseline']} {_e4(r['best_baseline_loss'])}"
        lines.append(
            f"| {'**mean**' if name == 'mean' else name} | {_e4(r['model'])} | {_e4(r['initial'])} | {_e4(r[REFERENCE])} "
            f"| {_e4(r[SECOND])} | {best} | {_skill_cell(r, name == 'mean')} | {_skill_cell(r, name == 'mean', 'skill_vs_har')} "
            f"| {_gap_cell(r)} | {fmt(r['calibration_error'], '.4f')} | {fmt(r['calibration_p'], '.3f')} "
            f"| {fmt(r['best_epoch'], '.1f' if r['n_seeds'] > 1 or name == 'mean' else '.0f')} | {fmt(r['seconds'], '.0f')} |")
    lines += ["", "Per horizon (test pinball x1e-4; skill of the model vs garch_t_tod)", "",
              f"| set | horizon | model | initial | {REFERENCE} | {SECOND} | skill vs GARCH |", "|---|---|---|---|---|---|---|"]
    for name, r in [*rows.items(), ("mean", mean)]:
        for h, v in r["per_horizon"].items():
            one = r["n_seeds"] == 1 and name != "mean" and v["skill_vs_garch_lo"] is not None
            ci = f" [{100 * v['skill_vs_garch_lo']:+.2f}, {100 * v['skill_vs_garch_hi']:+.2f}]" if one else ""
            lines.append(f"| {name} | {h} | {_e4(v['model'])} | {_e4(v['initial'])} | {_e4(v[REFERENCE])} "
                         f"| {_e4(v[SECOND])} | {_pct(v['skill_vs_garch'])}{ci} |")
    return "\n".join(lines) + "\n"


def _csv(header: list[str], records: list[list[Any]]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    w.writerows(["" if v is None else v for v in rec] for rec in records)
    return buf.getvalue()


def write_tables(out: Path, runs: Mapping[str, Sequence[Mapping[str, Any]]], meta: Mapping[str, Any]) -> str:
    """runs: {set: [figures of each seed's run]} -> benchmark.md, benchmark.csv (a row per set and the mean),
    horizons.csv (per set and horizon), benchmark.json (all of it, every run too); returns the markdown."""
    rows = {name: aggregate(rs) for name, rs in runs.items()}
    mean = mean_over_sets(rows)
    title = f"Benchmark: experiment={meta['experiment']}, seeds {', '.join(str(s) for s in meta['seeds'])}"
    md = markdown(rows, mean, title)
    write_text(out / "benchmark.md", md)
    table = [[name, r["n_seeds"], r["best_baseline"], *(r[c] for c in NUMERIC), *(r["sd"][c] for c in NUMERIC)]
             for name, r in [*rows.items(), ("mean", mean)]]
    write_text(out / "benchmark.csv", _csv(["set", "n_seeds", "best_baseline", *NUMERIC, *(f"{c}_sd" for c in NUMERIC)], table))
    keys = ["model", "initial", REFERENCE, SECOND, "skill_vs_garch", "skill_vs_garch_lo", "skill_vs_garch_hi"]
    per_h = [[name, h, *(v[k] for k in keys)] for name, r in [*rows.items(), ("mean", mean)]
             for h, v in r["per_horizon"].items()]
    write_text(out / "horizons.csv", _csv(["set", "horizon", *keys], per_h))
    write_json(out / "benchmark.json", {**meta, "columns": dict(COLUMNS), "sets": rows, "mean": mean,
                                        "runs": {k: list(v) for k, v in runs.items()}})
    return md
