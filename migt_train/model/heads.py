"""Multi-horizon quantile heads, non-crossing by construction."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class QuantileHeads(nn.Module):
    """(B, D), (B, S) window log stds -> (B, H, Q) standardised quantiles: per horizon, x + horizon
    embedding -> own MLP -> [base, deltas] -> base + cumsum(softplus(deltas)), times a positive spread
    factor exp(linear(x, log stds)); so q_1 < q_2 < ... < q_Q always.

    Initialised to output about the standard-normal spread (base -1.6, equal steps up to +1.6) so a
    model trained on standardised targets starts near calibrated.
    """

    def __init__(self, d_model: int, n_horizons: int, n_quantiles: int, hidden: int = 128,
                 n_scales: int = 0, scale_anchor: int | None = None, init_low: float = -1.6,
                 init_high: float = 1.6):
        super().__init__()
        self.horizon = nn.Parameter(torch.randn(n_horizons, d_model) * 0.02)
        self.w1 = nn.Parameter(torch.randn(n_horizons, d_model, hidden) / math.sqrt(d_model))
        self.b1 = nn.Parameter(torch.zeros(n_horizons, hidden))
        self.w2 = nn.Parameter(torch.randn(n_horizons, hidden, n_quantiles) * (0.1 / math.sqrt(hidden)))
        step = (init_high - init_low) / max(n_quantiles - 1, 1)
        delta = math.log(math.expm1(step))  # softplus^-1(step)
        self.b2 = nn.Parameter(torch.tensor([init_low] + [delta] * (n_quantiles - 1)).repeat(n_horizons, 1))

        # log of a per-horizon spread factor, linear in the features and the window's log std per
        # variable: the input scale reaches the output multiplicatively, as a volatility forecast does
        self.log_scale = nn.Linear(d_model + n_scales, n_horizons)
        nn.init.zeros_(self.log_scale.weight)
        nn.init.zeros_(self.log_scale.bias)
        if scale_anchor is not None:
            # start as RevIN's reverse step: spread proportional to the anchor variable's window std
            with torch.no_grad():
                self.log_scale.weight[:, d_model + scale_anchor] = 1.0

    def forward(self, x: torch.Tensor, log_std: torch.Tensor) -> torch.Tensor:
        """x (B, D), log_std (B, n_scales) -> (B, H, Q)."""
        h = x.unsqueeze(1) + self.horizon  # (B, H, D)
        h = F.gelu(torch.einsum("bhd,hde->bhe", h, self.w1) + self.b1)
        out = torch.einsum("bhe,heq->bhq", h, self.w2) + self.b2
        shape = out[..., :1] + torch.cat([torch.zeros_like(out[..., :1]), F.softplus(out[..., 1:]).cumsum(-1)], -1)
        scale = self.log_scale(torch.cat([x, log_std], dim=-1)).clamp(-6.0, 6.0).exp()  # (B, H)
        return shape * scale.unsqueeze(-1)
