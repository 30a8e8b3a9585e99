"""trainer.beat_initial: what a trained epoch needs to replace the initial weights (epoch 0 of
trainer.validate_before_training) as the best checkpoint.

"lower": a lower val loss, as for any epoch. "significant": also a one-sided 95% paired
circular-block-bootstrap test of the per-sample val pinball difference (epoch − initial weights):
the 95th percentile of the resampled mean differences must be below 0 (blocks as long as the
longest horizon, as in the evaluation's comparison with the best baseline). On a small validation split
(a few hundred samples of real bars) a lower val loss is often noise that training fitted; the
anchored model's initial weights are a strong forecast, kept unless training beats it beyond noise.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch

from migt_train.evaluation.comparison import one_sided_upper_bound, per_sample_loss


class InitialGuard:
    """Holds the initial weights' per-sample val losses; `accepts` decides for a trained epoch's forecasts."""

    def __init__(self, rule: str, levels: Sequence[float], block: int) -> None:
        self.rule, self.levels, self.block = rule, [float(t) for t in levels], int(block)
        self.losses: np.ndarray | None = None  # (n_val,) pinball over levels and horizons, rows in time order

    def set_initial(self, q: torch.Tensor, y: torch.Tensor) -> None:
        if self.rule == "significant":
            self.losses = per_sample_loss(q, y, self.levels).mean(-1)

    def accepts(self, q: torch.Tensor, y: torch.Tensor) -> tuple[bool, str]:
        """q (n, H, Q), y (n, H) of the val rows the initial weights were scored on -> (accept, why)."""
        if self.losses is None:
            return True, ""
        d = per_sample_loss(q, y, self.levels).mean(-1) - self.losses
        hi = one_sided_upper_bound(d, self.block)
        return bool(hi < 0), f"val pinball minus epoch 0's {d.mean():+.3g}, one-sided 95% bound {float(hi):+.3g}"

    def state_dict(self) -> dict[str, Any]:
        return {"losses": None if self.losses is None else torch.from_numpy(self.losses)}

    def load_state_dict(self, state: dict[str, Any] | None) -> None:
        losses = (state or {}).get("losses")
        self.losses = None if losses is None else torch.as_tensor(losses).double().numpy()
