"""The synthetic oracle's calibration_error on val+test windows of n samples, beside the calibration_noise null.

    python scripts/oracle_calibration_windows.py 255,886,1434 [config overrides...]

Checks the null of metrics.json "calibration_noise" (i.i.d. Gaussian bars, exact quantiles) against the
truth of the synthetic market (stochastic volatility, releases, jumps, leverage): for each window size,
the oracle's forecasts are scored on consecutive disjoint windows and the null is drawn on the first
window's rows. Also answers "what calibration error does the truth itself get on a test split this size?".
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch
from hydra import compose, initialize_config_dir

from migt_train.data import load_market
from migt_train.evaluation.calibration_noise import null_calibration_errors
from migt_train.evaluation.metrics import quantile_metrics

CONF = Path(__file__).resolve().parents[1] / "conf"


def _row(label: str, e: np.ndarray) -> str:
    return (f"{label:<22} {len(e):>6}  mean {e.mean():.4f}  median {np.median(e):.4f}  p90 {np.quantile(e, 0.9):.4f}  "
            f"P(>0.01) {np.mean(e > 0.01):.2f}  P(>0.02) {np.mean(e > 0.02):.2f}  P(>0.03) {np.mean(e > 0.03):.2f}")


def main(argv: list[str]) -> None:
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__)
        return
    sizes = [int(x) for x in argv[0].split(",")]
    with initialize_config_dir(str(CONF), version_base=None):
        cfg = compose("config", overrides=argv[1:])
    data = load_market(cfg.data)
    if data.oracle is None:
        raise SystemExit("error: the configured data source has no oracle (use the synthetic market)")
    levels = [float(t) for t in cfg.quantiles.levels]
    rows = torch.cat([data.splits["val"], data.splits["test"]]).cpu()
    q = torch.as_tensor(np.asarray(data.oracle.quantiles(rows.numpy(), levels)), dtype=torch.float64)
    y = data.targets[rows].double()
    names = list(data.horizon_names)
    print(f"val+test: {len(rows)} samples, horizons {list(data.horizons)} bars, levels {levels}")
    print(f"{'':<22} {'count':>6}")
    for n in sizes:
        oracle = np.array([quantile_metrics(q[i:i + n], y[i:i + n], levels, names)["calibration_error"]
                           for i in range(0, len(rows) - n + 1, n)])
        null, _ = null_calibration_errors(rows[:n].numpy(), data.horizons, levels)
        print(_row(f"oracle, n={n} windows", oracle))
        print(_row(f"null, n={n} draws", null))


if __name__ == "__main__":
    main(sys.argv[1:])
