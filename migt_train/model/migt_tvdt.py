"""MIGT-TVDT: RevIN -> variable embedding + calendar encoding -> temporal attention -> pooling ->
variable attention with gated instance norm -> flatten pooling -> non-crossing multi-horizon quantiles."""

from __future__ import annotations

from typing import Any, Iterator, Mapping

import torch
import torch.nn.functional as F
from torch import nn

from .attention import Dropout
from .embedding import ScaleEmbedding, VariableEmbedding
from .heads import QuantileHeads
from .revin import RevIN
from .temporal import AttentionPooling, TemporalEncoder
from .time_encoding import CalendarEncoding
from .variable_attention import VariableEncoder


class MIGTTVDT(nn.Module):
    """features (B, T, V), mask (B, T) True = real bar, time dict -> {"quantiles", "quantiles_std"} (B, H, Q).

    time: bar_in_day (B, T), day_of_week (B,) 0 = Mon, day_of_month (B,) 1-31, day_of_year (B,) 1-366.
    Inputs are standardised with the input_mean/input_std buffers; quantiles_std is in standardised
    target units and quantiles = quantiles_std * target_std + target_mean (log-return units).
    scale_anchor: index of the variable (the one-bar return) whose window std the forecast spread
    starts proportional to; None leaves that relation to be learned from scratch.

    Additions beyond the MIGT-TVDT reference architecture, all off by default (then the model is exactly that architecture):
    vol_anchor: time["vol_anchor"] (B, H), a causal long-memory std of each horizon's return
        (data.vol_anchor), is the unit of the heads: quantiles = sigma_h * heads(...), the heads learn the
        residual shape of y / sigma_h and start at the unit-variance Student-t(anchor_df) quantiles at
        `quantile_levels`; log(sigma_h / target_std_h) is also a per-horizon input of the heads.
        scale_anchor is then not used (sigma_h already carries the scale).
    n_event_features: width E of time["events"] (B, H, E), the scheduled releases inside each horizon
        and their recency (data.event_calendar), a per-horizon input of the heads.
    n_realized: width K of time["realized"] (B, K) (vol_anchor only): the log ratios of the bars' realised
        range (Garman-Klass) variance to the anchor's expectation, then of their volume to the usual volume at
        their times of day, over slices of the past (volatility/realized.CONTEXT_SLICES: the bar, quarter hours
        of trading back to two hours, the two hours before, the day, the week), then the return in units of the anchor's std
        over the last bar, hour, day and week. A GARCH on closes sees neither range nor volume nor the sign of the
        moves; entering each horizon's log spread linearly (from 0) they let the heads learn a HAR-like correction
        of the anchor, with its own lag profile.
    head_shape: "learned" (the MIGT-TVDT reference architecture: every quantile from the inputs) or "fixed" (vol_anchor only):
        the quantiles of y / sigma_h stay at their training values and the model forecasts a spread factor
        per horizon. Measured on the quickstart market: a learned shape fitted validation-period noise
        (better on val, worse on test than the anchor alone); the learned spread helped on both.
    n_instruments > 1 (a pooled run, data.path naming several instruments): time["instrument"] (B,) says whose
        window it is; the input and target scaling buffers hold one row per instrument, and a learned
        instrument embedding (zero at the start) is added to the variable tokens before the variable stage and
        to the pooled representation; the heads' context weights are shared plus each instrument's own deviation
        (zero at the start). With 1 the model and its state_dict are the single-instrument ones.
    n_cross (vol_anchor, data.cross_asset): the last n_cross columns of time["realized"] are every instrument's
        recent bar moves (data/cross_asset.cross_moves); they shift each horizon's quantiles linearly, per
        instrument, from 0 (lead-lag between markets).
    """

    HEAD_SHAPES = ("learned", "fixed")

    def __init__(self, n_variables: int = 24, n_horizons: int = 5, n_quantiles: int = 7,
                 max_seq_len: int = 288, bars_per_day: int = 288, d_model: int = 256, n_heads: int = 8,
                 d_ff: int = 1024, dropout: float = 0.1, n_temporal_layers: int = 4,
                 n_variable_layers: int = 2, head_hidden: int = 128, tod_dims: int = 32,
                 dow_dims: int = 16, dom_dims: int = 16, doy_dims: int = 32, patch_len: int = 1,
                 scale_anchor: int | None = None, vol_anchor: bool = False, n_event_features: int = 0,
                 quantile_levels: list[float] | None = None, anchor_df: float = 5.0, head_shape: str = "learned",
                 n_realized: int = 0, n_instruments: int = 1, n_cross: int = 0):
        super().__init__()
        self.n_instruments = int(n_instruments)
        self.vol_anchor = bool(vol_anchor)
        self.n_realized = int(n_realized)
        self.n_cross = int(n_cross)
        self.n_event_features = int(n_event_features)
        if self.vol_anchor and quantile_levels is not None and len(quantile_levels) != n_quantiles:
            raise ValueError(f"quantile_levels has {len(quantile_levels)} levels, n_quantiles is {n_quantiles}")
        self.max_seq_len = max_seq_len
        self.patch_len = patch_len
        per = (self.n_instruments,) if self.n_instruments > 1 else ()  # a pooled run scales each instrument apart
        self.register_buffer("input_mean", torch.zeros(*per, n_variables))
        self.register_buffer("input_std", torch.ones(*per, n_variables))
        self.register_buffer("target_mean", torch.zeros(*per, n_horizons))
        self.register_buffer("target_std", torch.ones(*per, n_horizons))
        if self.n_instruments > 1:
            self.instrument = nn.Embedding(self.n_instruments, d_model)
            nn.init.zeros_(self.instrument.weight)  # the untrained model treats every instrument alike
        self.revin = RevIN(n_variables)
        self.embed = VariableEmbedding(n_variables, d_model, patch_len)
        self.calendar = CalendarEncoding(d_model, bars_per_day, tod_dims, dow_dims, dom_dims, doy_dims)
        # windows are right-aligned, so a learned embedding per token position tells steps from the end:
        # without it attention sees a 24 h window as an unordered set and cannot tell "now" from "a day ago"
        self.recency = nn.Parameter(torch.zeros(-(-max_seq_len // patch_len), d_model))
        # the calendar at the forecast origin (last token) reaches the heads directly
        self.origin = nn.Linear(d_model, d_model)
        self.temporal = TemporalEncoder(d_model, n_heads, d_ff, dropout, n_temporal_layers)
        self.pool_time = AttentionPooling(d_model)
        # only the window's log std comes back, not its mean: the mean of a price-level variable names the
        # era (prices drift), which a model memorises on the training period and misapplies later
        self.scale = ScaleEmbedding(n_variables, d_model, n_stats=1)
        self.variable = VariableEncoder(d_model, n_heads, d_ff, dropout, n_variable_layers)
        self.pool = nn.Sequential(nn.Linear(n_variables * d_model, d_model), nn.GELU(), Dropout(dropout))
        self.heads = QuantileHeads(d_model, n_horizons, n_quantiles, head_hidden, n_scales=n_variables,
                                   scale_anchor=None if self.vol_anchor else scale_anchor,
                                   n_context=int(self.vol_anchor) + self.n_event_features + self.n_realized,
                                   init_levels=quantile_levels if self.vol_anchor else None, init_df=anchor_df,
                                   fixed_shape=head_shape == "fixed", n_instruments=self.n_instruments,
                                   n_cross=self.n_cross)
        if self.vol_anchor and head_shape != "fixed":
            # zero last layer: the untrained model is exactly sigma_h times the start quantiles
            nn.init.zeros_(self.heads.w2)

    @staticmethod
    def config_errors(values: Mapping[str, Any]) -> Iterator[tuple[str, str, Any]]:
        """Broken value rules of a model config node (with the signature's defaults filled in), as
        (key, rule, value); types and unknown keys are checked against the signature (migt_train.config.checks)."""
        d_model, n_heads = values["d_model"], values["n_heads"]
        if n_heads < 1 or d_model % n_heads:
            yield "n_heads", f"must divide model.d_model={d_model}", n_heads
        if not 0 <= values["dropout"] < 1:
            yield "dropout", "must lie in [0, 1)", values["dropout"]
        if values["n_instruments"] < 1:
            yield "n_instruments", "must be >= 1", values["n_instruments"]
        if values["n_cross"] and not values["vol_anchor"]:
            yield "n_cross", "needs data.vol_anchor=true (the moves are in units of the anchor's std)", values["n_cross"]
        if values["patch_len"] < 1:
            yield "patch_len", "must be >= 1", values["patch_len"]
        if values["head_shape"] not in MIGTTVDT.HEAD_SHAPES:
            yield "head_shape", f"must be one of {', '.join(MIGTTVDT.HEAD_SHAPES)}", values["head_shape"]
        elif values["head_shape"] == "fixed" and not values["vol_anchor"]:
            yield "head_shape", "fixed needs data.vol_anchor=true (the fixed quantiles are those of y / sigma_h)", "fixed"

    @torch.no_grad()
    def set_scaling(self, input_mean: torch.Tensor, input_std: torch.Tensor,
                    target_mean: torch.Tensor, target_std: torch.Tensor) -> None:
        """Copy the training split's per-variable input and per-horizon target statistics into the buffers
        (one row per instrument when n_instruments > 1: MarketData's stats of a pooled market)."""
        for name, value in (("input_mean", input_mean), ("input_std", input_std),
                            ("target_mean", target_mean), ("target_std", target_std)):
            buffer, value = getattr(self, name), torch.as_tensor(value, dtype=torch.float32)
            if value.shape != buffer.shape:
                raise ValueError(f"set_scaling: {name} of shape {tuple(value.shape)}, the model's is {tuple(buffer.shape)}")
            buffer.copy_(value)

    @torch.no_grad()
    def set_anchor_shape(self, quantiles: torch.Tensor) -> None:
        """vol_anchor only: start the heads at `quantiles` (H, Q) of y / sigma_h (the training split's, from
        MarketData.anchored_quantiles) instead of the Student-t ones."""
        if not self.vol_anchor:
            raise ValueError("set_anchor_shape needs vol_anchor=True")
        self.heads.set_start(torch.as_tensor(quantiles, dtype=torch.float32))

    def _trim_and_pad(self, features: torch.Tensor, mask: torch.Tensor, bar: torch.Tensor):
        """Drop leading steps that are padding in every sample, then left-pad T to a multiple of patch_len.

        The trim reads the mask on the host: free on CPU, a per-step sync on CUDA, so skipped there.
        """
        if not features.is_cuda:
            valid_steps = mask.any(0)
            start = int(valid_steps.int().argmax()) if not bool(valid_steps[0]) else 0
            features, mask, bar = features[:, start:], mask[:, start:], bar[:, start:]
        pad = -features.shape[1] % self.patch_len
        if pad:
            features = F.pad(features, (0, 0, pad, 0))
            mask = F.pad(mask, (pad, 0))
            bar = F.pad(bar, (pad, 0))
        return features, mask, bar

    def forward(self, features: torch.Tensor, mask: torch.Tensor | None,
                time: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        # mask None = every bar is real (step.gather passes None on CUDA when it knows so on the host)
        all_valid = mask is None and features.shape[1] % self.patch_len == 0
        if mask is None:
            mask = torch.ones(features.shape[:2], dtype=torch.bool, device=features.device)
        features, mask, bar = self._trim_and_pad(features, mask, time["bar_in_day"])
        inst = time["instrument"] if self.n_instruments > 1 else None
        in_mean, in_std, t_mean, t_std = self.scaling(inst)
        x = (features - in_mean) / in_std
        x, stats = self.revin(x, mask)  # (B, T, V), (B, V, 2)

        b, t, _ = x.shape
        token_mask = mask.view(b, t // self.patch_len, self.patch_len).any(-1)  # (B, N)
        calendar = self.calendar({**time, "bar_in_day": bar}, mask, self.patch_len)  # (B, N, D)
        tokens = self.embed(x) + calendar + self.recency[-calendar.shape[1]:]  # (V, B, N, D), variable-major

        # no boolean mask where nothing is padded, so SDPA may choose its fastest kernel; reading the
        # mask on the host is free on CPU, a sync on CUDA (there only the caller's None says so)
        attn_mask = None if all_valid or (not token_mask.is_cuda and bool(token_mask.all())) else token_mask
        h = self.temporal(tokens, attn_mask)
        h = self.pool_time(h, attn_mask) + self.scale(stats[..., 1:])  # (B, V, D)
        if inst is not None:
            who = self.instrument(inst)  # (B, D)
            h = h + who.unsqueeze(1)
        h = self.variable(h)
        h = self.pool(h.flatten(1)) + self.origin(calendar[:, -1])  # (B, D)
        if inst is not None:
            h = h + who

        context = []
        if self.vol_anchor:
            sigma = time["vol_anchor"].to(h.dtype).clamp_min(1e-12)  # (B, H)
            context.append(torch.log(sigma / t_std).unsqueeze(-1))
        if self.n_event_features:
            context.append(time["events"].to(h.dtype))
        realized = time["realized"].to(h.dtype) if self.n_realized else None
        if self.n_realized:  # the same recent range, volume and move context for every horizon
            context.append(realized[:, : self.n_realized].unsqueeze(1).expand(-1, sigma.shape[1], -1))
        cross = realized[:, self.n_realized:] if self.n_cross else None
        q = self.heads(h, stats[..., 1], torch.cat(context, dim=-1) if context else None, inst, cross)
        if self.vol_anchor:
            q = q * sigma.unsqueeze(-1)  # log-return units
            return {"quantiles": q, "quantiles_std": (q - t_mean.unsqueeze(-1)) / t_std.unsqueeze(-1)}
        return {"quantiles": q * t_std.unsqueeze(-1) + t_mean.unsqueeze(-1), "quantiles_std": q}

    def scaling(self, instrument: torch.Tensor | None) -> tuple[torch.Tensor, ...]:
        """(input_mean, input_std, target_mean, target_std) for a batch: the buffers as they are ((V,), (H,)), or
        with n_instruments > 1 each sample's instrument's rows ((B, 1, V), (B, H))."""
        if instrument is None:
            return self.input_mean, self.input_std, self.target_mean, self.target_std
        return (self.input_mean[instrument].unsqueeze(1), self.input_std[instrument].unsqueeze(1),
                self.target_mean[instrument], self.target_std[instrument])
