"""Multi-horizon quantile heads, non-crossing by construction."""

from __future__ import annotations

import math

from typing import Sequence

import torch
import torch.nn.functional as F
from scipy import stats
from torch import nn


class QuantileHeads(nn.Module):
    """(B, D), (B, S) window log stds -> (B, H, Q) standardised quantiles: per horizon, x + horizon
    embedding -> own MLP -> [base, deltas] -> base + cumsum(softplus(deltas)), times a positive spread
    factor exp(linear(x, log stds)); so q_1 < q_2 < ... < q_Q always.

    Initialised to output about the standard-normal spread (base -1.6, equal steps up to +1.6) so a
    model trained on standardised targets starts near calibrated; with `init_levels` (used by the
    volatility-anchored model, whose heads forecast y / sigma) the start is the unit-variance
    Student-t(init_df) quantiles at those levels instead.

    n_context > 0: a per-horizon context (B, H, C) (e.g. releases inside the horizon, the log of the
    volatility anchor) enters each horizon's MLP input and, linearly, its log spread; both start at 0.

    n_cross > 0: other instruments' recent moves (B, n_cross) shift each horizon's quantiles, per instrument
    (lead-lag: a known part of the coming shocks moves the forecast's location); zero at the start.

    fixed_shape: no MLP; the standardised quantiles are one learned (H, Q) shape for every input (from the start quantiles,
    e.g. the training quantiles of y / sigma_h) and only the log spread depends on the inputs.
    """

    def __init__(self, d_model: int, n_horizons: int, n_quantiles: int, hidden: int = 128,
                 n_scales: int = 0, scale_anchor: int | None = None, init_low: float = -1.6,
                 init_high: float = 1.6, n_context: int = 0, init_levels: Sequence[float] | None = None,
                 init_df: float = 5.0, fixed_shape: bool = False, n_instruments: int = 1,
                 n_cross: int = 0):
        super().__init__()
        self.fixed_shape = fixed_shape
        step = (init_high - init_low) / max(n_quantiles - 1, 1)
        delta = math.log(math.expm1(step))  # softplus^-1(step)
        init = [init_low] + [delta] * (n_quantiles - 1)
        if init_levels is not None:
            t = stats.t.ppf(list(init_levels), init_df) * math.sqrt((init_df - 2.0) / init_df)
            init = [float(t[0])] + [math.log(math.expm1(float(d))) for d in t[1:] - t[:-1]]
        init_t = torch.tensor(init, dtype=torch.float32).repeat(n_horizons, 1)
        self.context = None
        self.register_parameter("instrument_context_scale", None)
        self.register_parameter("cross_location", None)
        if n_cross:
            self.cross_location = nn.Parameter(torch.zeros(n_instruments, n_horizons, n_cross))
        if fixed_shape:  # one learned shape for every input, from the start quantiles (set_start); no MLP
            self.b2 = nn.Parameter(init_t)
        else:
            self.horizon = nn.Parameter(torch.randn(n_horizons, d_model) * 0.02)
            self.w1 = nn.Parameter(torch.randn(n_horizons, d_model, hidden) / math.sqrt(d_model))
            self.b1 = nn.Parameter(torch.zeros(n_horizons, hidden))
            self.w2 = nn.Parameter(torch.randn(n_horizons, hidden, n_quantiles) * (0.1 / math.sqrt(hidden)))
            self.b2 = nn.Parameter(init_t)
        if n_context:
            if not fixed_shape:
                self.context = nn.Linear(n_context, d_model)
                nn.init.zeros_(self.context.weight)
            self.context_scale = nn.Parameter(torch.zeros(n_horizons, n_context))
            if n_instruments > 1:  # each instrument's own deviation from the shared weights, zero at the start
                self.instrument_context_scale = nn.Parameter(torch.zeros(n_instruments, n_horizons, n_context))

        # log of a per-horizon spread factor, linear in the features and the window's log std per
        # variable: the input scale reaches the output multiplicatively, as a volatility forecast does
        self.log_scale = nn.Linear(d_model + n_scales, n_horizons)
        nn.init.zeros_(self.log_scale.weight)
        nn.init.zeros_(self.log_scale.bias)
        if scale_anchor is not None:
            # start as RevIN's reverse step: spread proportional to the anchor variable's window std
            with torch.no_grad():
                self.log_scale.weight[:, d_model + scale_anchor] = 1.0

    @torch.no_grad()
    def set_start(self, quantiles: torch.Tensor, min_step: float = 1e-3) -> None:
        """Make the initial output about `quantiles` (H, Q), increasing per row, e.g. the training split's
        quantiles of y / sigma_h: the base and softplus^-1 of the steps become the output biases."""
        steps = (quantiles[:, 1:] - quantiles[:, :-1]).clamp_min(min_step)
        self.b2[:, 0] = quantiles[:, 0].to(self.b2)
        self.b2[:, 1:] = torch.log(torch.expm1(steps)).to(self.b2)

    def forward(self, x: torch.Tensor, log_std: torch.Tensor, context: torch.Tensor | None = None,
                instrument: torch.Tensor | None = None, cross: torch.Tensor | None = None) -> torch.Tensor:
        """x (B, D), log_std (B, n_scales), context (B, H, n_context) or None, instrument (B,) (with
        n_instruments > 1), cross (B, n_cross) (with n_cross) -> (B, H, Q)."""
        shape = _increasing(self.b2).expand(len(x), -1, -1) if self.fixed_shape else self._shape(x, context)
        log_scale = self.log_scale(torch.cat([x, log_std], dim=-1))  # (B, H)
        if context is not None:
            weights = self.context_scale
            if instrument is not None and self.instrument_context_scale is not None:
                weights = weights + self.instrument_context_scale[instrument]  # (B, H, C)
            log_scale = log_scale + (context * weights).sum(-1)
        scale = log_scale.clamp(-6.0, 6.0).exp()
        out = shape * scale.unsqueeze(-1)
        if self.cross_location is not None:
            weights = self.cross_location[0 if instrument is None else instrument]  # (H, C) or (B, H, C)
            out = out + (cross.unsqueeze(-2) * weights).sum(-1).unsqueeze(-1)
        return out

    def _shape(self, x: torch.Tensor, context: torch.Tensor | None) -> torch.Tensor:
        """(B, D), (B, H, C) -> (B, H, Q) increasing standardised quantiles from each horizon's MLP."""
        h = x.unsqueeze(1) + self.horizon  # (B, H, D)
        if self.context is not None:
            h = h + self.context(context)
        h = F.gelu(torch.einsum("bhd,hde->bhe", h, self.w1) + self.b1)
        return _increasing(torch.einsum("bhe,heq->bhq", h, self.w2) + self.b2)


def _increasing(out: torch.Tensor) -> torch.Tensor:
    """(..., Q) [base, raw steps] -> base + cumsum(softplus(steps)): increasing along the last axis."""
    return out[..., :1] + torch.cat([torch.zeros_like(out[..., :1]), F.softplus(out[..., 1:]).cumsum(-1)], -1)
