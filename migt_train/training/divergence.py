"""When a run has diverged, so that it ends as a failure instead of "completed" with absurd numbers.

The rule, per epoch, on the validation loss (the training objective, in standardised target units
z = (y - train mean) / train std):

- a non-finite val loss (the weights or the forecasts overflowed), or
- a val loss above FACTOR x the loss of the constant forecast 0 (every quantile at the training
  mean) on the same rows.

Why this reference: it needs no training and no extra pass over the features, it is computed on
exactly the rows and loss the val loss is, and it bounds what any sane model scores: for unit-variance
targets the pinball loss of 0 is at most E|z| <= 1, a fitted model beats it, and an untrained one
starts near it. A model 100x worse (quantiles ~100 standard deviations off) has learned nothing
recoverable, while the slack covers a val period far more volatile than training (100x the loss
would need the volatility to be ~100x larger). Measured: `optimizer=sgd optimizer.lr=1e10` gives
3.5e28x the reference (smoke preset, epoch 1); a healthy smoke run is at 0.66x after one epoch.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
from torch import nn

from migt_train.data.market import MarketData
from migt_train.errors import MigtError
from migt_train.training.step import standardised_targets

FACTOR = 100.0


@torch.no_grad()
def zero_forecast_loss(loss_fn: nn.Module, model: nn.Module, data: MarketData, n_levels: int,
                       split: str = "val") -> float:
    """The objective of forecasting every quantile at the training mean, on `split`'s rows."""
    rows = data.splits[split]
    y = data.targets[rows].float()
    finite = torch.isfinite(y).all(dim=1)
    device = model.target_mean.device
    z = standardised_targets(model, y[finite].to(device), data.instrument[rows][finite].to(device))
    q = torch.zeros(*z.shape, n_levels, device=z.device)
    out = loss_fn(q, z)
    return float(getattr(out, "loss", out))


def check(epoch: int, val_loss: float, reference: float, best_epoch: int, best_loss: float,
          best_path: Path) -> None:
    """MigtError("training diverged ...") when the epoch's val loss says so (see module notes)."""
    if math.isfinite(val_loss) and val_loss <= FACTOR * reference:
        return
    what = (f"val loss is {val_loss}" if not math.isfinite(val_loss) else
            f"val loss {val_loss:.3g} is {val_loss / reference:.3g}x that of forecasting the training mean "
            f"({reference:.3g}; the limit is {FACTOR:g}x)")
    best = (f"; best.pt keeps epoch {best_epoch} (val loss {best_loss:.4g}), which "
            f"`python -m migt_train.evaluate <run dir>` can still evaluate"
            if best_epoch and math.isfinite(best_loss) and best_path.is_file() else "")
    raise MigtError(
        f"training diverged at epoch {epoch}: {what}{best}. Start a new run with a lower optimizer.lr, "
        "a smaller trainer.gradient_clip_norm or a longer scheduler.warmup_steps, or check the data for "
        "extreme values"
    )
