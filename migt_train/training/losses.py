"""Quantile losses on standardised targets; breakdowns stay tensors so nothing syncs with the host."""

from __future__ import annotations

from typing import NamedTuple, Sequence

import torch
from torch import nn

from migt_train.evaluation.metrics import pinball


class QuantileLossOutput(NamedTuple):
    loss: torch.Tensor  # scalar
    per_quantile: torch.Tensor  # (Q,) mean pinball per level
    per_horizon: torch.Tensor  # (H,) mean pinball per horizon
    crossing: torch.Tensor  # scalar, unweighted penalty


def _levels(quantiles: Sequence[float]) -> torch.Tensor:
    lv = torch.as_tensor([float(q) for q in quantiles], dtype=torch.float32)
    if lv.ndim != 1 or lv.numel() == 0 or not bool(((lv > 0) & (lv < 1)).all()) or not bool((lv[1:] > lv[:-1]).all()):
        raise ValueError(f"quantile levels must be strictly increasing inside (0, 1), got {list(quantiles)}")
    return lv


class PinballLoss(nn.Module):
    """Mean pinball loss tau*max(y-q,0) + (1-tau)*max(q-y,0) over samples, horizons and levels."""

    levels: torch.Tensor

    def __init__(self, quantiles: Sequence[float]) -> None:
        super().__init__()
        # a buffer so that .to(device) moves the levels with the module
        self.register_buffer("levels", _levels(quantiles), persistent=False)
        self.quantiles = [float(q) for q in quantiles]  # exact config values, for labels and checks

    def elementwise(self, q: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """q (B, H, Q), y (B, H) -> (B, H, Q), computed in float32 even under autocast."""
        return pinball(q.float(), y.float(), self.levels)

    def forward(self, q: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.elementwise(q, y).mean()


class QuantileCrossingPenalty(nn.Module):
    """Soft penalty on q_{i} > q_{i+1}: mean of relu(q_i - q_{i+1}) over adjacent levels."""

    def forward(self, q: torch.Tensor) -> torch.Tensor:
        return torch.relu(q[..., :-1] - q[..., 1:]).float().mean()


class CombinedQuantileLoss(nn.Module):
    """Pinball loss + crossing_weight * crossing penalty, with per-quantile and per-horizon breakdowns."""

    def __init__(self, quantiles: Sequence[float], crossing_weight: float = 0.0) -> None:
        super().__init__()
        if crossing_weight < 0:
            raise ValueError(f"crossing_weight must be >= 0, got {crossing_weight}")
        self.pinball = PinballLoss(quantiles)
        self.crossing = QuantileCrossingPenalty()
        self.crossing_weight = float(crossing_weight)

    @property
    def levels(self) -> torch.Tensor:
        return self.pinball.levels

    @property
    def quantiles(self) -> list[float]:
        return self.pinball.quantiles

    def forward(self, q: torch.Tensor, y: torch.Tensor) -> QuantileLossOutput:
        el = self.pinball.elementwise(q, y)
        per_quantile = el.mean(dim=(0, 1))
        per_horizon = el.mean(dim=(0, 2))
        crossing = self.crossing(q) if q.shape[-1] > 1 else el.new_zeros(())
        loss = per_quantile.mean()
        if self.crossing_weight > 0:
            loss = loss + self.crossing_weight * crossing
        return QuantileLossOutput(loss, per_quantile.detach(), per_horizon.detach(), crossing.detach())
