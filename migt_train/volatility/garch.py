"""GARCH(1,1) with Student-t innovations on time-of-day-normalised one-bar log returns.

The volatility model a quant fits first on intraday bars, used by the `garch_t_tod` baseline and
available to the model as a causal volatility scale. With r_t the one-bar log return of bar t
(feature `log_return`), b_t its bar of day and p the time-of-day profile:

    e_t        = r_t / p[b_t]                                  normalised return
    e_t        = mu + sqrt(sigma2_t) * z_t,  z_t ~ Student-t(nu) scaled to unit variance
    sigma2_t+1 = omega + (alpha + gamma * [e_t < mu]) * (e_t - mu)^2 + beta * sigma2_t

`fit` is the GARCH(1,1) (gamma = 0). gamma (GJR: a fall raises the next variance more than a rise) is
only read back from the vol_anchor.json of runs trained with the since removed data.vol_anchor_leverage,
so those runs still forecast as they were trained.

API (all arrays numpy; rows index the bar series):

- `GarchTOD.fit(returns, bar_in_day, train, bars_per_day)`: the profile (train mean |r| per bar of
  day over the train mean |r|) and the GARCH parameters, fitted by `arch` on `returns[train]` only.
  A fit that fails to converge does not raise: it falls back to EWMA-like parameters and says so in
  `converged` / `message`.
- `filter_variance(returns, bar_in_day) -> (N,)`: out[t] = sigma2_{t+1}, the one-step-ahead
  variance of the normalised return of bar t+1 given bars <= t, with the fitted parameters fixed
  (causal; one `scipy.signal.lfilter` pass).
- `horizon_std(sigma2_next, bar_in_day, rows, horizons) -> (n, H)`: std of the h-bar log return
  from origin row t, sqrt(sum_{k=1..h} p[b_{t+k}]^2 * E_t[sigma2_{t+k}]) with GARCH mean reversion
  E_t[sigma2_{t+k}] = omega * sum_{j<k-1} phi^j + phi^(k-1) * sigma2_{t+1}, phi = alpha + beta,
  over the bars that actually follow t in the series.
- `quantiles(sigma2_next, bar_in_day, rows, horizons, levels) -> (n, H, Q)`: unit-variance
  Student-t(nu) quantiles times `horizon_std`, plus mu * sum_k p[b_{t+k}].

Simplifications, on purpose: the series is the bars as stored, so a return across a weekend or a
session break is just one more bar (the profile of the first bar of the session absorbs the
typical gap); the h-bar return is given the one-bar Student-t shape (aggregation makes the true
shape somewhat closer to normal).
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass
from typing import Sequence

import numpy as np
from scipy import signal, stats

from migt_train.errors import MigtError

log = logging.getLogger(__name__)

# A bar of day seen fewer times than this in training gets the overall level (profile 1): a mean of
# a handful of |returns| is noise, and a bar slot absent from training (a session break) has none.
MIN_PROFILE_COUNT = 5
# Lower bound of the profile relative to the overall mean |r|, so a bar of day whose training
# returns are (nearly) all zero cannot divide later returns by ~0.
PROFILE_FLOOR = 0.05
# The optimiser sees returns scaled to this standard deviation: arch's starting values and bounds
# are well conditioned there (its own scale check asks for a variance between 10 and 10,000).
FIT_STD = 10.0
# Used when the fit fails: the RiskMetrics decay with a small omega keeping the variance mean
# reverting, and moderately heavy tails.
FALLBACK_ALPHA, FALLBACK_BETA, FALLBACK_NU = 0.05, 0.94, 8.0
HORIZON_CHUNK = 8192  # origin rows per block of horizon_std


def tod_profile(returns: np.ndarray, bar_in_day: np.ndarray, bars_per_day: int, smooth: int = 0,
                what: str = "log_return") -> np.ndarray:
    """Train mean |r| per bar of day over the overall mean (of any non-negative measure, e.g. a variance, when
    given one; `what` names it in the error); smooth > 0: each seen bar of day takes the plain
    average of the seen bars of day within +-smooth bars (circular), which trades a little resolution for
    much less noise (a bar of day holds one return per training day). The first bar after a break (an
    unseen bar of day before it) is neither smoothed nor averaged into its neighbours: its return spans
    the break (the overnight gap of a day session), a different quantity from the bars that follow."""
    a = np.abs(returns)
    overall = float(a.mean())
    if not overall > 0:
        raise MigtError(f"{what}: the training values are all zero ({len(a)} rows); no volatility to fit")
    total = np.bincount(bar_in_day, weights=a, minlength=bars_per_day)
    count = np.bincount(bar_in_day, minlength=bars_per_day)
    prof = np.ones(bars_per_day)
    seen = count >= MIN_PROFILE_COUNT
    prof[seen] = total[seen] / count[seen] / overall
    inner = seen & np.roll(seen, 1)  # seen, and so is the bar of day before it: not the first after a break
    if smooth > 0 and inner.any():
        rows = np.flatnonzero(inner)
        idx = (rows[:, None] + np.arange(-smooth, smooth + 1)) % bars_per_day  # (inner bars, window)
        w = inner[idx]
        prof[rows] = (prof[idx] * w).sum(1) / w.sum(1)  # each window holds its own bar: never 0 / 0
    return np.maximum(prof, PROFILE_FLOOR)


@dataclass
class GarchTOD:
    """A fitted model. omega and mu are in units of the normalised return e = r / profile[bar]."""

    profile: np.ndarray  # (bars_per_day,) train mean |r| per bar of day, relative to the overall mean
    omega: float
    alpha: float
    beta: float
    nu: float
    mu: float
    converged: bool
    message: str
    init_variance: float  # train variance of e: starts the filter at row 0
    fit_seconds: float = 0.0
    gamma: float = 0.0  # extra news impact of a fall (GJR), from older runs' vol_anchor.json; fit gives 0

    @property
    def persistence(self) -> float:
        # a fall is half of the (symmetric) innovations, so gamma adds gamma / 2 to the expected decay
        return self.alpha + self.beta + self.gamma / 2.0

    @classmethod
    def fit(
        cls,
        returns: np.ndarray,
        bar_in_day: np.ndarray,
        train: slice | np.ndarray,
        bars_per_day: int,
        mean: str = "zero",
        max_iter: int | None = None,
        profile_smoothing: int = 0,
    ) -> "GarchTOD":
        """Fit on returns[train] only (a slice or an index array of consecutive bars, in order).

        mean: "zero" (mu = 0) or "constant" (mu estimated). max_iter: the optimiser's iteration cap
        (None: arch's default). profile_smoothing: average each bar of day's profile with the bars of day
        within +- this many bars (0: the raw per-bar means).
        """
        import time

        from arch import arch_model

        if mean not in ("zero", "constant"):
            raise MigtError(f"GarchTOD.fit: mean must be 'zero' or 'constant' (got {mean!r})")
        t0 = time.perf_counter()
        r = np.asarray(returns, dtype=np.float64)[train]
        b = np.asarray(bar_in_day, dtype=np.int64)[train]
        if len(r) < 100:
            raise MigtError(f"data.splits.train: too few bars to fit a GARCH baseline ({len(r)} rows, need 100)")
        if not np.isfinite(r).all():
            raise MigtError(f"log_return: non-finite training returns ({int((~np.isfinite(r)).sum())} rows)")
        if b.min() < 0 or b.max() >= bars_per_day:
            raise MigtError(f"bar_in_day: values outside 0..{bars_per_day - 1} ({int(((b < 0) | (b >= bars_per_day)).sum())} rows)")
        prof = tod_profile(r, b, bars_per_day, profile_smoothing)
        e = r / prof[b]
        var_e = float(e.var())
        scale = float(FIT_STD / np.sqrt(var_e))
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # convergence problems are reported below, not as warnings
                res = arch_model(e * scale, mean="Zero" if mean == "zero" else "Constant", vol="GARCH",
                                 p=1, q=1, dist="t", rescale=False).fit(
                    disp="off", show_warning=False, options=None if max_iter is None else {"maxiter": int(max_iter)})
            p = res.params
            ok = int(res.convergence_flag) == 0 and bool(np.isfinite(p.to_numpy()).all())
            msg = str(res.optimization_result.message)
        except (ValueError, np.linalg.LinAlgError, RuntimeError) as exc:
            p, ok, msg = None, False, f"{type(exc).__name__}: {exc}"
        if ok and p is not None:
            s2 = float(scale) ** 2
            out = cls(prof, float(p["omega"]) / s2, float(p["alpha[1]"]), float(p["beta[1]"]), float(p["nu"]),
                      float(p["mu"]) / scale if "mu" in p else 0.0, True, msg, var_e)
        else:
            log.warning("GARCH-t fit did not converge (%s); using fallback alpha=%g beta=%g", msg, FALLBACK_ALPHA, FALLBACK_BETA)
            omega = var_e * (1.0 - FALLBACK_ALPHA - FALLBACK_BETA)
            out = cls(prof, omega, FALLBACK_ALPHA, FALLBACK_BETA, FALLBACK_NU, 0.0, False,
                      f"fit failed ({msg}); fallback parameters", var_e)
        out.fit_seconds = time.perf_counter() - t0
        return out

    def params(self) -> dict[str, float | bool | str]:
        """JSON-ready fitted parameters (omega, mu in normalised-return units)."""
        return {"omega": self.omega, "alpha": self.alpha, "beta": self.beta, "gamma": self.gamma,
                "persistence": self.persistence, "nu": self.nu, "mu": self.mu, "converged": self.converged, "message": self.message,
                "fit_seconds": self.fit_seconds}

    def _normalised(self, returns: np.ndarray, bar_in_day: np.ndarray) -> np.ndarray:
        return np.asarray(returns, dtype=np.float64) / self.profile[np.asarray(bar_in_day, dtype=np.int64)]

    def filter_variance(self, returns: np.ndarray, bar_in_day: np.ndarray) -> np.ndarray:
        """(N,) out[t] = sigma2_{t+1} = omega + (alpha + gamma [e_t < mu]) (e_t - mu)^2 + beta * sigma2_t,
        from sigma2_0 = the training variance of e; fixed parameters, so each value uses bars <= t only."""
        e = self._normalised(returns, bar_in_day) - self.mu
        if not np.isfinite(e).all():
            raise MigtError(f"log_return: non-finite returns ({int((~np.isfinite(e)).sum())} rows)")
        u = self.omega + (self.alpha + self.gamma * (e < 0)) * e * e
        # v_t = beta * v_{t-1} + u_t with v_{-1} = sigma2_0: a first-order IIR filter
        v, _ = signal.lfilter([1.0], [1.0, -self.beta], u, zi=[self.beta * self.init_variance])
        return v

    def horizon_std(
        self, sigma2_next: np.ndarray, bar_in_day: np.ndarray, rows: np.ndarray, horizons: Sequence[int],
        bar_multiplier: np.ndarray | None = None,
    ) -> np.ndarray:
        """(n, H) std of the h-bar log return from origin rows (see the module docstring). bar_multiplier
        (N,): a known variance factor per bar (e.g. scheduled releases) on each future bar's variance."""
        rows = np.asarray(rows, dtype=np.int64)
        bid = np.asarray(bar_in_day, dtype=np.int64)
        k_max = int(max(horizons))
        if len(rows) and (rows.min() < 0 or rows.max() + k_max >= len(bid)):
            raise MigtError(f"GarchTOD.horizon_std: rows need {k_max} following bars inside the series ({len(bid)} rows)")
        phi = self.persistence
        k = np.arange(k_max)  # k = step - 1
        # E_t[sigma2_{t+1+k}] = omega * (1 + phi + ... + phi^(k-1)) + phi^k * sigma2_{t+1}
        geo = np.concatenate([[0.0], np.cumsum(phi ** k[:-1])])
        s2 = np.asarray(sigma2_next, dtype=np.float64)
        h_idx = np.asarray(horizons, dtype=np.int64) - 1
        out = np.empty((len(rows), len(h_idx)))
        for lo in range(0, len(rows), HORIZON_CHUNK):  # bounded (chunk, k_max) temporaries
            r = rows[lo:lo + HORIZON_CHUNK]
            ahead = r[:, None] + 1 + k
            weight = self.profile[bid[ahead]] ** 2
            if bar_multiplier is not None:
                weight = weight * bar_multiplier[ahead]
            cum = np.cumsum(weight * (self.omega * geo + (phi**k) * s2[r, None]), axis=1)
            out[lo:lo + HORIZON_CHUNK] = np.sqrt(cum[:, h_idx])
        return out

    def horizon_mean(self, bar_in_day: np.ndarray, rows: np.ndarray, horizons: Sequence[int]) -> np.ndarray:
        """(n, H) mu * sum_k profile[b_{t+k}]: zero for the zero-mean fit."""
        rows = np.asarray(rows, dtype=np.int64)
        if self.mu == 0.0:
            return np.zeros((len(rows), len(horizons)))
        bid = np.asarray(bar_in_day, dtype=np.int64)
        k = np.arange(1, int(max(horizons)) + 1)
        cum = np.cumsum(self.profile[bid[rows[:, None] + k]], axis=1)
        return self.mu * cum[:, np.asarray(horizons, dtype=np.int64) - 1]

    def standard_quantiles(self, levels: Sequence[float]) -> np.ndarray:
        """(Q,) quantiles of the unit-variance Student-t(nu)."""
        return stats.t.ppf(np.asarray(levels, dtype=np.float64), self.nu) * np.sqrt((self.nu - 2.0) / self.nu)

    def quantiles(
        self,
        sigma2_next: np.ndarray,
        bar_in_day: np.ndarray,
        rows: np.ndarray,
        horizons: Sequence[int],
        levels: Sequence[float],
    ) -> np.ndarray:
        """(n, H, Q) log-return quantiles of every horizon from the origin rows."""
        sd = self.horizon_std(sigma2_next, bar_in_day, rows, horizons)
        mean = self.horizon_mean(bar_in_day, rows, horizons)
        return mean[..., None] + sd[..., None] * self.standard_quantiles(levels)
