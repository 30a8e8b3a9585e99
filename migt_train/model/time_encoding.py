"""Calendar encodings: time of day (harmonics), day of week (learned), day of month/year (Time2Vec)."""

from __future__ import annotations

import math

import torch
from torch import nn


class TimeOfDayEncoding(nn.Module):
    """(..., ) integer bar_in_day -> (..., dims) sin/cos of harmonics 1..dims/2 of the bars_per_day period.

    Phases are reduced modulo the period in integer arithmetic, so bar b and bar b + bars_per_day encode
    identically. The encoding is fixed, so it is computed once per bar of the day and looked up.
    """

    def __init__(self, bars_per_day: int, dims: int = 32):
        super().__init__()
        self.bars_per_day = bars_per_day
        harmonics = torch.arange(1, dims // 2 + 1)
        phase = (torch.arange(bars_per_day).unsqueeze(-1) * harmonics) % bars_per_day
        angle = phase.to(torch.float32) * (2 * math.pi / bars_per_day)
        self.register_buffer("table", torch.cat([torch.sin(angle), torch.cos(angle)], dim=-1), persistent=False)

    def forward(self, bar: torch.Tensor) -> torch.Tensor:
        return self.table[bar.long() % self.bars_per_day]


class Time2Vec(nn.Module):
    """(B,) scalar time -> (B, dims): one linear term and dims-1 periodic terms sin(w t + b), all learned."""

    def __init__(self, dims: int, period: float):
        super().__init__()
        self.period = period
        # t is scaled to [0, 1] per period; initial frequencies span harmonics 1..dims-1 of the period
        self.weight = nn.Parameter(torch.cat([torch.ones(1), 2 * math.pi * torch.arange(1, dims, dtype=torch.float32)]))
        self.bias = nn.Parameter(torch.zeros(dims))

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        z = (t.to(torch.float32) / self.period).unsqueeze(-1) * self.weight + self.bias
        return torch.cat([z[..., :1], torch.sin(z[..., 1:])], dim=-1)


class CalendarEncoding(nn.Module):
    """Composite positional encoding: bar_in_day (B, T), day_of_week/month/year (B,) -> (B, T, D).

    time of day (tod_dims) + day of week (dow_dims) + day of month (dom_dims) + day of year (doy_dims),
    concatenated and projected to d_model. With patch_len P > 1 the raw encodings are averaged over the
    valid bars of each patch before the projection (linear, so equal to averaging projected encodings).
    """

    def __init__(self, d_model: int, bars_per_day: int, tod_dims: int = 32, dow_dims: int = 16,
                 dom_dims: int = 16, doy_dims: int = 32):
        super().__init__()
        self.time_of_day = TimeOfDayEncoding(bars_per_day, tod_dims)
        # a width of 0 leaves that part out
        self.day_of_week = nn.Embedding(7, dow_dims) if dow_dims else None
        self.day_of_month = Time2Vec(dom_dims, period=31.0) if dom_dims else None
        self.day_of_year = Time2Vec(doy_dims, period=366.0) if doy_dims else None
        self.proj = nn.Linear(tod_dims + dow_dims + dom_dims + doy_dims, d_model)

    def forward(self, time: dict[str, torch.Tensor], mask: torch.Tensor, patch_len: int) -> torch.Tensor:
        """mask (B, T) with T a multiple of patch_len -> (B, T / patch_len, D)."""
        tod = self.time_of_day(time["bar_in_day"])  # (B, T, tod)
        if patch_len > 1:
            b, t, c = tod.shape
            m = mask.to(tod.dtype).view(b, t // patch_len, patch_len, 1)
            tod = (tod.view(b, t // patch_len, patch_len, c) * m).sum(2) / m.sum(2).clamp_min(1.0)
        day = [part(time[key].long() if key == "day_of_week" else time[key])
               for key, part in (("day_of_week", self.day_of_week), ("day_of_month", self.day_of_month),
                                 ("day_of_year", self.day_of_year)) if part is not None]
        if not day:
            return self.proj(tod)
        day = torch.cat(day, dim=-1)
        return self.proj(torch.cat([tod, day.unsqueeze(1).expand(-1, tod.shape[1], -1)], dim=-1))
