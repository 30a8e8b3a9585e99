"""The one toy market and the one toy model the tests share (fixtures in conftest.py).

Market: returns r_t = sigma_t * N(0, 1) with slow volatility regimes (a signal the EWMA baseline and a
model can use) and a known sigma path, so the oracle's Gaussian quantiles are exact. Features are
[r, |r|, noise...]; targets are sums of the next h returns (the path runs h_max bars past the end, so
every row has finite targets). Model: masked mean + last bar + day-of-week embedding -> MLP ->
non-crossing quantiles, following the model contract (DEVELOPERS.md).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from migt_train.data.market import MarketData

LEVELS = [0.05, 0.1, 0.25, 0.5, 0.75, 0.89, 0.94]


class ToyOracle:
    """Returns are independent N(0, sigma_t^2) with a known sigma path: exact Gaussian quantiles."""

    def __init__(self, sigma: np.ndarray, horizons: Sequence[int]):
        self.var_cum = np.concatenate([[0.0], np.cumsum(sigma.astype(np.float64) ** 2)])
        self.horizons = list(horizons)

    def quantiles(self, rows: np.ndarray, levels: Sequence[float]) -> np.ndarray:
        rows = np.asarray(rows)
        z = torch.special.ndtri(torch.tensor(levels, dtype=torch.float64)).numpy()
        sd = np.stack([np.sqrt(self.var_cum[rows + 1 + h] - self.var_cum[rows + 1]) for h in self.horizons], 1)
        return sd[..., None] * z


def _name(h: int) -> str:
    m = 5 * h
    return f"{m // 60}h" if m % 60 == 0 else f"{m}m"


def toy_market(n: int = 480, horizons: Sequence[int] = (3, 6, 12, 24, 48), seq_len: int = 12, n_noise: int = 2,
               purge: bool = False, session_bars: int | None = 96, seed: int = 0) -> MarketData:
    """n bars of 5 minutes. Splits 60/20/20 by row; `purge` leaves h_max bars before each later split
    (and starts it a full window in), as load_market does. `session_bars`: windows do not reach back
    over a session start, so window lengths vary (None: one session)."""
    g = np.random.default_rng(seed)
    horizons = list(horizons)
    h_max = max(horizons)
    t_all = np.arange(n + h_max)
    sigma = 1e-3 * np.exp(0.8 * np.sin(2 * np.pi * t_all / 150))
    r = sigma * g.standard_normal(n + h_max)
    csum = np.concatenate([[0.0], np.cumsum(r)])
    t = t_all[:n]
    targets = np.stack([csum[t + 1 + h] - csum[t + 1] for h in horizons], 1)
    feats = np.concatenate([np.stack([r[:n], np.abs(r[:n])], 1), g.standard_normal((n, n_noise))], 1)
    day = (t + 72) // 288
    session_start = (t // session_bars) * session_bars if session_bars else np.zeros_like(t)
    long = lambda a: torch.as_tensor(np.asarray(a), dtype=torch.long)  # noqa: E731
    rows = lambda lo, hi: torch.arange(lo, hi, dtype=torch.long)  # noqa: E731
    gap_end, gap_start = (h_max, seq_len) if purge else (0, 0)
    n_train, n_val = int(0.6 * n), int(0.8 * n)
    return MarketData(
        features=torch.tensor(feats, dtype=torch.float32),
        feature_names=["log_return", "abs_return"] + [f"noise{i}" for i in range(n_noise)],
        timestamps=(np.datetime64("2024-01-02T00:00") + (t * 5).astype("timedelta64[m]")).astype("datetime64[ns]"),
        bar_in_day=long((t + 72) % 288),
        day_of_week=long(day % 5),
        day_of_month=long(day % 28 + 1),
        day_of_year=long(day % 365 + 1),
        window_start=long(np.maximum(session_start, t - (seq_len - 1))),
        targets=torch.tensor(targets, dtype=torch.float32),
        horizons=horizons,
        horizon_names=[_name(h) for h in horizons],
        bar_minutes=5,
        max_seq_len=seq_len,
        splits={
            "train": rows(seq_len, n_train - gap_end),
            "val": rows(n_train + gap_start, n_val - gap_end),
            "test": rows(n_val + gap_start, n - gap_end),
        },
        source="synthetic",
        oracle=ToyOracle(sigma, horizons),
    )


class ToyQuantileModel(nn.Module):
    """Masked mean + last bar + day of week -> MLP -> base + cumsum(softplus) quantiles: non-crossing."""

    def __init__(self, n_variables: int = 4, n_horizons: int = 5, n_quantiles: int = 7,
                 hidden: int = 32, dropout: float = 0.0, slow: float = 0.0) -> None:
        super().__init__()
        self.register_buffer("input_mean", torch.zeros(n_variables))
        self.register_buffer("input_std", torch.ones(n_variables))
        self.register_buffer("target_mean", torch.zeros(n_horizons))
        self.register_buffer("target_std", torch.ones(n_horizons))
        self.dow = nn.Embedding(7, 4)
        self.net = nn.Sequential(nn.Linear(2 * n_variables + 4, hidden), nn.GELU(), nn.Dropout(dropout),
                                 nn.Linear(hidden, n_horizons * n_quantiles))
        self.h, self.q = n_horizons, n_quantiles
        self.slow = slow  # seconds of sleep per forward, so subprocess tests can be killed mid-epoch

    @torch.no_grad()
    def set_scaling(self, input_mean, input_std, target_mean, target_std) -> None:
        for name, value in (("input_mean", input_mean), ("input_std", input_std),
                            ("target_mean", target_mean), ("target_std", target_std)):
            getattr(self, name).copy_(value)

    def forward(self, features: torch.Tensor, mask: torch.Tensor, time: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        if self.slow:
            import time as _t

            _t.sleep(self.slow)
        if mask is None:  # every bar real (what step.gather passes on CUDA for full windows)
            mask = torch.ones(features.shape[:2], dtype=torch.bool, device=features.device)
        x = (features - self.input_mean) / self.input_std * mask[..., None]
        mean = x.sum(1) / mask.sum(1, keepdim=True).clamp_min(1)
        z = torch.cat([mean, x[:, -1], self.dow(time["day_of_week"])], dim=-1)
        raw = self.net(z).view(-1, self.h, self.q)
        q_std = torch.cat([raw[..., :1], raw[..., :1] + torch.cumsum(F.softplus(raw[..., 1:]), -1)], -1)
        return {"quantiles": q_std * self.target_std[:, None] + self.target_mean[:, None], "quantiles_std": q_std}


def toy_model(data: MarketData, seed: int = 0, **kw) -> ToyQuantileModel:
    """A toy model sized for `data`, scaled with its training split."""
    torch.manual_seed(seed)
    model = ToyQuantileModel(data.n_features, len(data.horizons), len(LEVELS), **kw)
    model.set_scaling(*data.feature_stats("train"), *data.target_stats("train"))
    return model
