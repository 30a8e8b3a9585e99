"""`python -m migt_train.evaluate <run dir> [key=value ...]`: re-evaluate a run's best checkpoint.

Reads <run dir>/config.yaml and checkpoints/best.pt, applies dotted overrides to the config (e.g.
`data.path=other.parquet data.source=ohlcv evaluation.conformal=true`), and writes metrics.json,
predictions.parquet, plots/ and the config used into a fresh <run dir>/evaluations/<timestamp>/ (or
`--out DIR`), leaving the run's own files untouched.
"""

from __future__ import annotations

from typing import Any, Sequence

from migt_train.cli.common import add_overrides, parse, parser, quiet_logging, run_main


def summary_line(m: dict[str, Any]) -> str:
    """The test figures of an evaluation's metrics.json, as the CLI prints them."""
    skill = m.get("skill_vs_climatology")
    line = f"test pinball {m['test']['pinball_loss']:.6g}, calibration error {m['test']['calibration_error']:.4f}"
    if m.get("calibration_noise") is not None:
        line += f" (p = {m['calibration_noise']['p_value']:.3f} against exact calibration)"
    if skill is not None:
        line += f", skill vs climatology {skill:+.2%}"
    if m.get("oracle_gap_closed") is not None:
        line += f", oracle gap closed {m['oracle_gap_closed']:.2%}"
    c = m.get("comparison")
    if c is not None and m.get("skill_vs_best_baseline") is not None:
        line += (f"\nvs best baseline {c['baseline']}: skill {m['skill_vs_best_baseline']:+.2%}, "
                 f"loss difference {c['loss_difference']:.4g} (95% CI {c['ci95'][0]:.4g} to {c['ci95'][1]:.4g})")
    return line


def main(argv: Sequence[str] | None = None) -> int:
    p = parser("evaluate", __doc__)
    p.add_argument("run_dir", help="a run directory (config.yaml + checkpoints/best.pt)")
    add_overrides(p, "data.path=other.parquet data.source=ohlcv")
    p.add_argument("--out", metavar="DIR", help="write into DIR (new or empty) instead of <run dir>/evaluations/<time>/, "
                   "e.g. for a read-only run directory")
    args = parse(p, argv)
    if isinstance(args, int):
        return args
    quiet_logging()

    def body() -> int:
        from migt_train.evaluation.from_run import evaluate_checkpoint

        out_dir, m = evaluate_checkpoint(args.run_dir, args.overrides, args.out)
        print(f"{out_dir / 'metrics.json'}\n{summary_line(m)}")
        return 0

    return run_main(body)
