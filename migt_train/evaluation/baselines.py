"""Reference forecasts every model must beat, fitted on the training split only.

climatology: the training split's unconditional quantiles per horizon (no conditioning at all).
ewma: RiskMetrics-style volatility scaling. sigma_1bar(t) is a causal EWMA of squared one-bar log
returns (uses bars <= t only), sigma_h = sigma_1bar * sqrt(h bars), and the forecast is
sigma_h * z_{tau,h} where z are the training split's empirical quantiles of y_h / sigma_h, so fat
tails, skew and drift come from the data rather than a Gaussian assumption.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pandas as pd
import torch

from migt_train.data.market import MarketData
from migt_train.errors import MigtError
from migt_train.evaluation.settings import DEFAULT_EWMA_HALFLIFE

RETURN_FEATURE = "log_return"


def _train_quantiles(x: np.ndarray, levels: Sequence[float]) -> np.ndarray:
    """x (n, H) -> (H, Q) empirical quantiles, ignoring NaN."""
    if x.shape[0] == 0:
        raise MigtError("data.splits.train: no training samples to fit the baselines on (0 rows)")
    return np.nanquantile(x, np.asarray(levels, dtype=np.float64), axis=0).T


@dataclass
class Climatology:
    quantiles: torch.Tensor  # (H, Q) log returns

    @classmethod
    def fit(cls, data: MarketData, levels: Sequence[float]) -> "Climatology":
        y = data.split_targets("train").detach().cpu().double().numpy()
        return cls(torch.from_numpy(_train_quantiles(y, levels)))

    def predict(self, rows: torch.Tensor) -> torch.Tensor:
        return self.quantiles.expand(len(rows), *self.quantiles.shape).clone()


@dataclass
class EWMAVolatility:
    halflife: float  # bars
    sigma: torch.Tensor  # (N,) causal one-bar volatility at every row of the data
    horizon_bars: torch.Tensor  # (H,)
    z: torch.Tensor  # (H, Q) training quantiles of y_h / sigma_h

    @classmethod
    def fit(cls, data: MarketData, levels: Sequence[float], halflife: float = DEFAULT_EWMA_HALFLIFE) -> "EWMAVolatility":
        if not halflife > 0:
            raise MigtError(f"evaluation.ewma_halflife: must be > 0 bars (got {halflife})")
        if RETURN_FEATURE not in data.feature_names:
            raise MigtError(f"data.features: the ewma baseline needs a '{RETURN_FEATURE}' feature (have {data.feature_names})")
        r = data.features[:, data.feature_names.index(RETURN_FEATURE)].detach().cpu().double().numpy()
        train = data.splits["train"].cpu()
        if len(train) == 0:
            raise MigtError("data.splits.train: no training samples to fit the baselines on (0 rows)")
        # Start the recursion at the training period's mean square so early rows are not one bar's noise.
        v0 = float(np.mean(r[data.visible_bars("train")] ** 2))
        var = pd.Series(np.concatenate([[v0], r**2])).ewm(halflife=halflife, adjust=False).mean().to_numpy()[1:]
        sigma = torch.from_numpy(np.sqrt(np.maximum(var, 1e-20)))
        h = torch.tensor(data.horizons, dtype=torch.float64)
        y = data.targets[train].detach().cpu().double()
        scaled = y / (sigma[train, None] * h.sqrt())
        return cls(float(halflife), sigma, h, torch.from_numpy(_train_quantiles(scaled.numpy(), levels)))

    def predict(self, rows: torch.Tensor) -> torch.Tensor:
        sigma_h = self.sigma[torch.as_tensor(rows, dtype=torch.long).cpu(), None] * self.horizon_bars.sqrt()
        return sigma_h[..., None] * self.z


def fit_baselines(
    data: MarketData, levels: Sequence[float], ewma_halflife: float = DEFAULT_EWMA_HALFLIFE
) -> dict[str, Climatology | EWMAVolatility]:
    return {
        "climatology": Climatology.fit(data, levels),
        "ewma": EWMAVolatility.fit(data, levels, ewma_halflife),
    }
