"""What evaluation.price_tick does to a finished run's forecasts, on val (and with --test, test).

    python scripts/price_grid_effect.py RUN_DIR [--test]

Prints pinball x1e-4 and calibration error of the run's forecast (its network, then its seasonal blend when
it has one) off and on the run's stored price grid, and the same for garch_t_tod snapped to that grid, so
that the gain is seen against the baseline given the same treatment. The grid is the run's price_grid.json
(snapped here whether or not val took it); runs without one get the tick found on their training closes.
"ties half": the calibration error with outcomes on a quantile's grid point counted as half covered, the
convention for discrete outcomes (metrics.json counts them covered, y <= q).
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

from migt_train.data import load_market
from migt_train.evaluation.baselines import fit_baselines
from migt_train.evaluation.metrics import quantile_metrics
from migt_train.evaluation.price_grid import GRID_FILE, PriceGrid, read_grid
from migt_train.evaluation.settings import DEFAULT_EWMA_HALFLIFE
from migt_train.training.inference import predict
from migt_train.run.loaded import load_run


def ties_half_calibration(q: torch.Tensor, y: torch.Tensor, levels: list[float], tick: float, close) -> float:
    """Mean over horizons and levels of |P(y < q) + P(y on q's grid point) / 2 - tau|."""
    yy, qq = y.double().unsqueeze(-1), q.double()
    width = 0.01 * tick / torch.as_tensor(close, dtype=torch.float64).view(-1, 1, 1)  # 1/100 tick: on the point
    tie = (yy - qq).abs() <= width + 1e-3 * tick / torch.as_tensor(close, dtype=torch.float64).view(-1, 1, 1)
    cov = ((yy <= qq) & ~tie).double().mean(0) + 0.5 * tie.double().mean(0)  # (H, Q)
    return float((cov - torch.tensor(levels, dtype=torch.float64)).abs().mean())


def main(argv: list[str]) -> None:
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__)
        return
    run = load_run(argv[0])
    data = load_market(run.cfg.data, anchor_fit=run.anchor_fit)
    grid = read_grid(Path(argv[0])) if (Path(argv[0]) / GRID_FILE).is_file() else PriceGrid.for_market("auto", data)
    print(grid.describe())
    names, levels = list(data.horizon_names), run.levels
    garch = fit_baselines(data, levels, DEFAULT_EWMA_HALFLIFE)["garch_t_tod"]
    for split in ("val", "test") if "--test" in argv else ("val",):
        rows = data.splits[split].cpu()
        q = predict(run.model, data, rows, run.batch_size, run.device, run.precision)
        if run.blend is not None:
            q = run.blend.apply(q, data.bar_in_day[rows])
        y, close = data.targets[rows], data.close[rows.numpy()]
        for name, f in (("forecast", q), ("garch_t_tod", garch.predict(rows))):
            snapped = grid.snap(f, close, force=True)
            off, on = (quantile_metrics(x, y, levels, names) for x in (f, snapped))
            half = [ties_half_calibration(x, y, levels, grid.tick, close) for x in (f, snapped)]
            print(f"{split:<5} {name:<12} pinball {1e4 * off['pinball_loss']:.4f} -> {1e4 * on['pinball_loss']:.4f}   "
                  f"calibration {off['calibration_error']:.4f} -> {on['calibration_error']:.4f}   "
                  f"ties half {half[0]:.4f} -> {half[1]:.4f}")


if __name__ == "__main__":
    main(sys.argv[1:])
