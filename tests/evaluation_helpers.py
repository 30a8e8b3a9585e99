"""Fixtures for the evaluation tests: a seeded toy market with a known oracle and a tiny model that
follows the model contract (DEVELOPERS.md)."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from migt_train.data.market import MarketData

LEVELS = [0.05, 0.1, 0.25, 0.5, 0.75, 0.89, 0.94]
HORIZONS = [1, 3, 6]
HORIZON_NAMES = ["5m", "15m", "30m"]
FEATURES = ["log_return", "abs_return", "noise"]


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


def make_market(n: int = 900, seed: int = 0, max_seq_len: int = 16) -> MarketData:
    g = np.random.default_rng(seed)
    t = np.arange(n)
    sigma = 1e-3 * np.exp(0.8 * np.sin(2 * np.pi * t / 150))  # slow volatility regimes the EWMA can track
    r = sigma * g.standard_normal(n)
    csum = np.concatenate([[0.0], np.cumsum(r)])
    targets = np.full((n, len(HORIZONS)), np.nan)
    for j, h in enumerate(HORIZONS):
        ok = t + h < n
        targets[ok, j] = csum[t[ok] + 1 + h] - csum[t[ok] + 1]
    feats = np.stack([r, np.abs(r), g.standard_normal(n)], 1)
    ts = np.datetime64("2024-01-02T00:00") + (t * 5).astype("timedelta64[m]")
    bar = (t + 72) % 288
    long = lambda a: torch.as_tensor(np.asarray(a), dtype=torch.long)  # noqa: E731
    rows = lambda lo, hi: torch.arange(lo, hi, dtype=torch.long)  # noqa: E731
    h_max = max(HORIZONS)
    return MarketData(
        features=torch.tensor(feats, dtype=torch.float32),
        feature_names=list(FEATURES),
        timestamps=ts.astype("datetime64[ns]"),
        bar_in_day=long(bar),
        day_of_week=long((t // 288) % 5),
        day_of_month=long(2 + t // 288),
        day_of_year=long(2 + t // 288),
        window_start=long(np.maximum(0, t - (max_seq_len - 1))),
        targets=torch.tensor(targets, dtype=torch.float32),
        horizons=list(HORIZONS),
        horizon_names=list(HORIZON_NAMES),
        bar_minutes=5,
        max_seq_len=max_seq_len,
        splits={
            "train": rows(max_seq_len, int(0.6 * n) - h_max),
            "val": rows(int(0.6 * n) + max_seq_len, int(0.8 * n) - h_max),
            "test": rows(int(0.8 * n) + max_seq_len, n - h_max),
        },
        source="synthetic",
        oracle=ToyOracle(sigma, HORIZONS),
    )


class ToyQuantileModel(nn.Module):
    """model(features, mask, time) -> {"quantiles", "quantiles_std"} (B, H, Q), non-crossing."""

    def __init__(self, n_features: int = 3, n_horizons: int = 3, n_quantiles: int = 7, hidden: int = 8):
        super().__init__()
        self.register_buffer("input_mean", torch.zeros(n_features))
        self.register_buffer("input_std", torch.ones(n_features))
        self.register_buffer("target_mean", torch.zeros(n_horizons))
        self.register_buffer("target_std", torch.ones(n_horizons))
        self.body = nn.Sequential(nn.Linear(2 * n_features, hidden), nn.GELU(), nn.Dropout(0.5))
        self.head = nn.Linear(hidden, n_horizons * n_quantiles)
        self.shape = (n_horizons, n_quantiles)

    def set_scaling(self, input_mean, input_std, target_mean, target_std) -> None:
        for name, v in zip(("input_mean", "input_std", "target_mean", "target_std"), (input_mean, input_std, target_mean, target_std)):
            getattr(self, name).copy_(v)

    def forward(self, features: torch.Tensor, mask: torch.Tensor, time: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        x = (features - self.input_mean) / self.input_std
        m = mask[..., None].float()
        mean = (x * m).sum(1) / m.sum(1).clamp_min(1)
        spread = ((x - mean[:, None]).abs() * m).sum(1) / m.sum(1).clamp_min(1)
        raw = self.head(self.body(torch.cat([mean, spread], -1))).view(-1, *self.shape)
        q_std = torch.cat([raw[..., :1], raw[..., :1] + torch.cumsum(F.softplus(raw[..., 1:]), -1)], -1)
        return {"quantiles": q_std * self.target_std[:, None] + self.target_mean[:, None], "quantiles_std": q_std}


def make_model(data: MarketData, seed: int = 0) -> ToyQuantileModel:
    torch.manual_seed(seed)
    model = ToyQuantileModel(data.n_features, len(data.horizons), len(LEVELS))
    model.set_scaling(*data.feature_stats("train"), *data.target_stats("train"))
    return model


def make_history(n_epochs: int = 6) -> dict:
    return {
        "epochs": [
            {"epoch": e, "global_step": 10 * e, "lr": 1e-4 * min(1.0, (e + 1) / 3) * (0.5 ** max(0, e - 2)),
             "train_loss": 0.5 / (e + 1) + 0.3, "val_loss": 0.45 / (e + 1) + 0.32 + 0.01 * max(0, e - 3)}
            for e in range(n_epochs)
        ]
    }
