"""Reference forecasts every model must beat, fitted on the training split only.

climatology: the training split's unconditional quantiles per horizon (no conditioning at all).
ewma: RiskMetrics-style volatility scaling. sigma_1bar(t) is a causal EWMA of squared one-bar log
returns (uses bars <= t only), sigma_h = sigma_1bar * sqrt(h bars), and the forecast is
sigma_h * z_{tau,h} where z are the training split's empirical quantiles of y_h / sigma_h, so fat
tails, skew and drift come from the data rather than a Gaussian assumption.
seasonal_climatology: the training split's quantiles of each horizon's return per bar of day of the
forecast origin (pooled quantiles where a bar of day has too few training samples).
garch_t_tod: GARCH(1,1)-Student-t on one-bar returns divided by a training time-of-day profile
(`migt_train.volatility.garch.GarchTOD`), parameters fitted on the training bars only, variance
filtered causally through val/test with those parameters.
har_gk: a HAR regression of the log future realised range (Garman-Klass) variance on its log means over
the last bar, hour, day and week, time-of-day normalised (`migt_train.volatility.har.HARGK`); least squares
on the training rows, quantiles from the training quantiles of y_h / sigma_h.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pandas as pd
import torch

from migt_train.data.market import MarketData
from migt_train.volatility.garch import GarchTOD
from migt_train.errors import MigtError
from migt_train.evaluation.settings import DEFAULT_EWMA_HALFLIFE
from migt_train.volatility.har import HARGK
from migt_train.volatility.realized import bar_variance

RETURN_FEATURE = "log_return"
RANGE_FEATURES = ("open", "close", "garman_klass", RETURN_FEATURE)


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


# A bar of day with fewer training samples than this gets the pooled (all bars of day) quantiles: the
# 5% and 94% quantiles of a couple of dozen fat-tailed returns are too noisy to beat the pooled ones.
SEASONAL_MIN_SAMPLES = 50


@dataclass
class SeasonalClimatology:
    quantiles: torch.Tensor  # (bars_per_day, H, Q) log returns, by bar of day of the forecast origin
    n_pooled_cells: int  # bars of day that fell back to the pooled quantiles
    bar_in_day: torch.Tensor  # (N,) of the data, to look up any row

    @classmethod
    def fit(cls, data: MarketData, levels: Sequence[float], min_samples: int = SEASONAL_MIN_SAMPLES) -> "SeasonalClimatology":
        train = data.splits["train"].cpu()
        y = data.targets[train].detach().cpu().double().numpy()
        pooled = _train_quantiles(y, levels)
        bid = data.bar_in_day.cpu().numpy()
        cells = bid[train.numpy()]
        out = np.broadcast_to(pooled, (data.bars_per_day, *pooled.shape)).copy()
        order = np.argsort(cells, kind="stable")
        slots, starts, counts = np.unique(cells[order], return_index=True, return_counts=True)
        # one np.quantile per bar of day (<= bars_per_day calls), not per sample
        for b, lo, n in zip(slots, starts, counts):
            if n >= min_samples:
                out[b] = _train_quantiles(y[order[lo : lo + n]], levels)
        n_pooled = data.bars_per_day - int((counts >= min_samples).sum())
        return cls(torch.from_numpy(out), n_pooled, data.bar_in_day.detach().cpu())

    def predict(self, rows: torch.Tensor) -> torch.Tensor:
        return self.quantiles[self.bar_in_day[torch.as_tensor(rows, dtype=torch.long).cpu()]]


@dataclass
class GarchTODBaseline:
    model: GarchTOD
    sigma2_next: np.ndarray  # (N,) causal one-step-ahead variance of the normalised return
    bar_in_day: np.ndarray  # (N,)
    horizons: list[int]
    levels: list[float]

    @classmethod
    def fit(cls, data: MarketData, levels: Sequence[float], mean: str = "zero") -> "GarchTODBaseline":
        if RETURN_FEATURE not in data.feature_names:
            raise MigtError(f"data.features: the garch_t_tod baseline needs a '{RETURN_FEATURE}' feature (have {data.feature_names})")
        if len(data.splits["train"]) == 0:
            raise MigtError("data.splits.train: no training samples to fit the baselines on (0 rows)")
        r = data.features[:, data.feature_names.index(RETURN_FEATURE)].detach().cpu().double().numpy()
        bid = data.bar_in_day.detach().cpu().numpy()
        model = GarchTOD.fit(r, bid, data.visible_bars("train"), data.bars_per_day, mean=mean)
        return cls(model, model.filter_variance(r, bid), bid, list(data.horizons), [float(t) for t in levels])

    def predict(self, rows: torch.Tensor) -> torch.Tensor:
        rows_np = torch.as_tensor(rows, dtype=torch.long).cpu().numpy()
        return torch.from_numpy(self.model.quantiles(self.sigma2_next, self.bar_in_day, rows_np, self.horizons, self.levels))

    def report(self) -> dict:
        """Fitted parameters, convergence and fit time, for metrics.json."""
        p = self.model.params()
        return {
            "params": {k: p[k] for k in ("omega", "alpha", "beta", "persistence", "nu", "mu")},
            "converged": p["converged"],
            "message": p["message"],
            "fit_seconds": p["fit_seconds"],
        }


@dataclass
class HARGKBaseline:
    model: HARGK
    horizon_names: list[str]

    @classmethod
    def fit(cls, data: MarketData, levels: Sequence[float]) -> "HARGKBaseline":
        gk = bar_variance(data.features.detach().cpu().numpy(), data.feature_names)
        model = HARGK.fit(gk, data.timestamps, data.bar_in_day.cpu().numpy(), data.targets.cpu().double().numpy(),
                          data.splits["train"].cpu().numpy(), data.visible_bars("train"), data.bars_per_day,
                          data.horizons, levels)
        return cls(model, list(data.horizon_names))

    def predict(self, rows: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(self.model.quantiles(torch.as_tensor(rows, dtype=torch.long).cpu().numpy()))

    def report(self) -> dict:
        """Fitted coefficients and in-sample R^2 per horizon, for metrics.json."""
        return self.model.report(self.horizon_names)


Baseline = Climatology | EWMAVolatility | SeasonalClimatology | GarchTODBaseline | HARGKBaseline


def fit_baselines(
    data: MarketData, levels: Sequence[float], ewma_halflife: float = DEFAULT_EWMA_HALFLIFE
) -> dict[str, Baseline]:
    """Every baseline, fitted on the training split; each has predict(rows) -> (n, H, Q) log returns."""
    return {
        "climatology": Climatology.fit(data, levels),
        "ewma": EWMAVolatility.fit(data, levels, ewma_halflife),
        "seasonal_climatology": SeasonalClimatology.fit(data, levels),
        "garch_t_tod": GarchTODBaseline.fit(data, levels),
        # needs the bars' range (open, close, garman_klass): every file and the synthetic market have it
        **({"har_gk": HARGKBaseline.fit(data, levels)} if set(RANGE_FEATURES) <= set(data.feature_names) else {}),
    }
