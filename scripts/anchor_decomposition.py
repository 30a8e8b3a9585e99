"""Where an anchored run's forecast gains or loses against its own anchor, on val and test.

    python scripts/anchor_decomposition.py <run dir>

Prints pinball x1e-4 on the val and test splits of the run's data for: garch_t_tod; the anchor alone
(sigma_h x the training quantiles of y / sigma_h, i.e. the untrained anchored model); the run's best.pt;
best.pt with the anchor's median; and the anchor times best.pt's spread (its q_last - q_first over the
anchor's). README "Forecast quality" was measured with it. A diagnosis tool: it reads the test split,
so use what it shows on data you then do not report as held out.
"""

from __future__ import annotations

import sys

import torch

import migt_train
from migt_train.data import load_market
from migt_train.evaluation.baselines import GarchTODBaseline
from migt_train.evaluation.metrics import pinball
from migt_train.training.inference import predict


def main(run_dir: str) -> None:
    run = migt_train.load_run(run_dir)
    if not run.cfg.data.get("vol_anchor"):
        sys.exit(f"{run_dir}: not an anchored run (data.vol_anchor is false)")
    if 0.5 not in run.levels:
        sys.exit(f"{run_dir}: quantiles.levels {run.levels} have no median (0.5)")
    data = load_market(run.cfg.data, anchor_fit=run.anchor_fit)  # the run's own anchor fit
    levels = torch.tensor(run.levels, dtype=torch.float64)
    mid = run.levels.index(0.5)
    z = data.anchored_quantiles(run.levels).double()
    garch = GarchTODBaseline.fit(data, run.levels)
    for split in ("val", "test"):
        rows = data.splits[split]
        y = data.targets[rows].double()
        anchor = data.vol_anchor[rows].double()[..., None] * z
        model = predict(run.model, data, rows, run.batch_size).double()
        spread = (model[..., -1] - model[..., 0]) / (anchor[..., -1] - anchor[..., 0])
        forecasts = {
            "garch_t_tod": garch.predict(rows),
            "anchor alone": anchor,
            "best.pt": model,
            "best.pt with the anchor's median": model - model[..., mid : mid + 1] + anchor[..., mid : mid + 1],
            "anchor x best.pt's spread": anchor * spread[..., None],
        }
        print(f"{split} ({len(rows)} samples):")
        for name, q in forecasts.items():
            print(f"  {name:34s} {float(pinball(q.double(), y, levels).mean()) * 1e4:.4f}")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])
