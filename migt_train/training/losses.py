"""Quantile losses on standardised targets. The training step reads only the scalar loss; the
per-level/per-horizon breakdowns and the crossing penalty are computed when asked for."""

from __future__ import annotations

from typing import Any, Iterator, Mapping, Sequence

import torch
from torch import nn

from migt_train.evaluation.metrics import pinball


class QuantileLossOutput:
    """`loss` (scalar, with grad); breakdowns on request, detached."""

    def __init__(self, loss: torch.Tensor, elementwise: torch.Tensor, q: torch.Tensor,
                 crossing: torch.Tensor | None) -> None:
        self.loss = loss
        self._el, self._q, self._crossing = elementwise, q, crossing

    @property
    def per_quantile(self) -> torch.Tensor:
        """(Q,) mean pinball per level."""
        return self._el.detach().mean(dim=(0, 1))

    @property
    def per_horizon(self) -> torch.Tensor:
        """(H,) mean pinball per horizon."""
        return self._el.detach().mean(dim=(0, 2))

    @property
    def crossing(self) -> torch.Tensor:
        """Scalar, unweighted crossing penalty."""
        if self._crossing is None:
            q = self._q.detach()
            self._crossing = QuantileCrossingPenalty()(q) if q.shape[-1] > 1 else q.new_zeros((), dtype=torch.float32)
        return self._crossing.detach()


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
    """Pinball loss + crossing_weight * crossing penalty."""

    def __init__(self, quantiles: Sequence[float], crossing_weight: float = 0.0) -> None:
        super().__init__()
        if crossing_weight < 0:
            raise ValueError(f"crossing_weight must be >= 0, got {crossing_weight}")
        self.pinball = PinballLoss(quantiles)
        self.crossing = QuantileCrossingPenalty()
        self.crossing_weight = float(crossing_weight)

    @staticmethod
    def config_errors(values: Mapping[str, Any]) -> Iterator[tuple[str, str, Any]]:
        """Broken value rules of a loss config node, as (key, rule, value)."""
        if values["crossing_weight"] < 0:
            yield "crossing_weight", "must be >= 0", values["crossing_weight"]

    @property
    def levels(self) -> torch.Tensor:
        return self.pinball.levels

    @property
    def quantiles(self) -> list[float]:
        return self.pinball.quantiles

    def forward(self, q: torch.Tensor, y: torch.Tensor) -> QuantileLossOutput:
        el = self.pinball.elementwise(q, y)
        loss = el.mean(dim=(0, 1)).mean()  # mean over levels of the per-level means (the reduction order kept)
        crossing = None
        if self.crossing_weight > 0:
            crossing = self.crossing(q) if q.shape[-1] > 1 else el.new_zeros(())
            loss = loss + self.crossing_weight * crossing
        return QuantileLossOutput(loss, el, q, crossing)
