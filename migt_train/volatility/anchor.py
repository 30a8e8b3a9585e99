"""The causal volatility anchor: per row and horizon, the GARCH-t/time-of-day std of the h-bar return.

Parameters (time-of-day profile, GARCH(1,1)-t) are fitted on the bars the training windows see; the
variance is then filtered through every bar with those parameters fixed, so row t's anchor uses bars
<= t and the calendar of the bars that follow (known in advance). The model takes it as input and as
the spread its quantile heads start from (model.vol_anchor), which gives a 24 h window the memory of
a volatility level that persists for weeks.

With release codes (data.event_calendar) the anchor also knows the scheduled releases, as an
announcement-effect study would: a variance multiplier per release group and bar after the release,
estimated on the training bars (shrunk towards 1, since a year holds only a dozen payroll reports),
divides those bars' returns out before the GARCH fit and filter (a release spike is not news about
the volatility level) and multiplies the variance of the release bars inside each horizon.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from migt_train.volatility.events import EVENT_GROUPS, group_hits
from migt_train.volatility.garch import GarchTOD
from migt_train.errors import MigtError
from migt_train.utils.io import read_run_file
from migt_train.volatility.har import HARAnchor
from migt_train.volatility.realized import CONTEXT_SLICES, N_REALIZED, realized_ratios, signed_moves, volume_ratios

RELEASE_LAGS = 12  # bars after a release (the release bar is lag 0) that get their own multiplier
ANCHOR_FIT_VERSION = 2  # layout of AnchorFit.to_json (a run's vol_anchor.json); 2: the range correction (har)
ANCHOR_FILE = "vol_anchor.json"  # in a run directory, next to checkpoints/
RELEASE_PRIOR = 5.0  # shrinkage: pseudo-observations at multiplier 1 per (group, lag)
# The anchor's time-of-day profile averages the bars of day within +-10 minutes (the first bar after a
# break excepted): chosen on the val splits (anchor alone, val pinball x1e-4 raw -> averaged: synthetic
# 3.9690 -> 3.9649, FESX 5.2257 -> 5.1539, QQQ 10.733 -> 10.702, ES 8.651 -> 8.607; README "Forecast
# quality"). The garch_t_tod baseline keeps the raw per-bar means.
PROFILE_SMOOTHING_MINUTES = 10
# the share of training rows in each tail of a context column that clip_context clips to its quantile
CONTEXT_TAIL = 0.01


def release_lags(events: np.ndarray, max_lag: int = RELEASE_LAGS) -> np.ndarray:
    """(N,) class ids -> (G, N) bars since the group's last release (the release bar is 0), -1 if none
    within max_lag bars. Known in advance for future bars: the schedule is public."""
    n = len(events)
    idx = np.arange(n)
    out = np.full((len(EVENT_GROUPS), n), -1, dtype=np.int64)
    for g, group in enumerate(EVENT_GROUPS):
        hit = group_hits(events, group)
        last = np.maximum.accumulate(np.where(hit, idx, -1))
        lag = idx - last
        out[g] = np.where((last >= 0) & (lag <= max_lag), lag, -1)
    return out


def release_table(u: np.ndarray, lags: np.ndarray, fit_bars: slice, prior: float = RELEASE_PRIOR) -> np.ndarray:
    """u (N,) squared profile-normalised returns, lags (G, N) -> (G, RELEASE_LAGS + 1) variance multiplier
    per group and bar after the release, estimated on fit_bars with shrinkage to 1."""
    fit_u, fit_lags = u[fit_bars], lags[:, fit_bars]
    quiet = (fit_lags < 0).all(axis=0)
    base = float(fit_u[quiet].mean()) if quiet.any() else float(fit_u.mean())
    table = np.ones((lags.shape[0], RELEASE_LAGS + 1))
    for g in range(lags.shape[0]):
        at = fit_lags[g] >= 0
        sums = np.bincount(fit_lags[g][at], weights=fit_u[at], minlength=RELEASE_LAGS + 1)[: RELEASE_LAGS + 1]
        counts = np.bincount(fit_lags[g][at], minlength=RELEASE_LAGS + 1)[: RELEASE_LAGS + 1]
        table[g] = (sums / base + prior) / (counts + prior)
    return table


def apply_release_table(table: np.ndarray, lags: np.ndarray) -> np.ndarray:
    """(G, L) multipliers, lags (G, N) -> (N,) 1 + sum over groups of (m[g, lag] - 1), 1 away from releases."""
    mult = np.ones(lags.shape[1])
    for g in range(lags.shape[0]):
        at = lags[g] >= 0
        mult[at] += table[g][lags[g][at]] - 1.0
    return np.maximum(mult, 0.2)


def release_multiplier(u: np.ndarray, lags: np.ndarray, fit_bars: slice, prior: float = RELEASE_PRIOR) -> np.ndarray:
    """u (N,) squared profile-normalised returns, lags (G, N) -> (N,) variance multiplier, 1 away from
    releases: 1 + sum over groups of (m[g, lag] - 1), m estimated on fit_bars with shrinkage to 1."""
    return apply_release_table(release_table(u, lags, fit_bars, prior), lags)


@dataclass
class AnchorFit:
    """What the anchor learnt from the training bars: the GARCH-t/time-of-day model of the release-scaled
    returns and (with the release calendar) the multiplier table. A trained run stores it (vol_anchor.json)
    so forecasts on other bars filter them with these fixed parameters instead of refitting."""

    garch: GarchTOD
    releases: np.ndarray | None  # (G, RELEASE_LAGS + 1) or None without the release calendar
    har: HARAnchor | None = None  # the range correction of the GARCH forecast (volatility/har.py)
    volume: np.ndarray | None = None  # mean volume per bar of day on the training bars (realized.volume_profile)
    # (2, N_REALIZED): each context column's CONTEXT_TAIL and 1 - CONTEXT_TAIL quantiles on the training rows, where
    # every row's context is clipped (clip_context); None in runs from before it (no clipping)
    context_range: np.ndarray | None = None

    def to_json(self) -> dict[str, Any]:
        g = self.garch
        return {"version": ANCHOR_FIT_VERSION, "bars_per_day": len(g.profile),
                "garch": {"profile": g.profile.tolist(), "omega": g.omega, "alpha": g.alpha, "beta": g.beta, "gamma": g.gamma,
                          "nu": g.nu, "mu": g.mu, "converged": g.converged, "message": g.message,
                          "init_variance": g.init_variance},
                "releases": None if self.releases is None else self.releases.tolist(),
                "har": None if self.har is None else self.har.to_json(),
                "volume_profile": None if self.volume is None else self.volume.tolist(),
                "context_range": None if self.context_range is None else self.context_range.tolist()}

    @classmethod
    def from_json(cls, d: Mapping[str, Any], source: str) -> "AnchorFit":
        try:
            if int(d["version"]) != ANCHOR_FIT_VERSION:
                raise MigtError(f"{source}: anchor fit version {d['version']}, this code reads {ANCHOR_FIT_VERSION}")
            g = d["garch"]
            garch = GarchTOD(np.asarray(g["profile"], dtype=np.float64), float(g["omega"]), float(g["alpha"]),
                             float(g["beta"]), float(g["nu"]), float(g["mu"]), bool(g["converged"]), str(g["message"]),
                             float(g["init_variance"]), gamma=float(g.get("gamma", 0.0)))
            rel = d.get("releases")
            releases = None if rel is None else np.asarray(rel, dtype=np.float64)
            har = None if d.get("har") is None else HARAnchor.from_json(d["har"])
            volume = None if d.get("volume_profile") is None else np.asarray(d["volume_profile"], dtype=np.float64)
            bounds = None if d.get("context_range") is None else np.asarray(d["context_range"], dtype=np.float32)
        except (KeyError, TypeError, ValueError) as e:
            raise MigtError(f"{source}: not a volatility anchor fit ({type(e).__name__}: {e})") from None
        if releases is not None and releases.shape != (len(EVENT_GROUPS), RELEASE_LAGS + 1):
            raise MigtError(f"{source}: release table of shape {releases.shape}, expected {(len(EVENT_GROUPS), RELEASE_LAGS + 1)}")
        if bounds is not None and bounds.shape != (2, N_REALIZED):
            raise MigtError(f"{source}: context range of shape {bounds.shape}, expected {(2, N_REALIZED)}")
        return cls(garch, releases, har, volume, bounds)


def fit_anchor(returns: np.ndarray, bar_in_day: np.ndarray, fit_bars: slice, bars_per_day: int,
               events: np.ndarray | None = None) -> AnchorFit:
    """The anchor's parameters from returns[fit_bars] (the training bars) only."""
    r = np.asarray(returns, dtype=np.float64)
    bid = np.asarray(bar_in_day, dtype=np.int64)
    table = None
    mult = np.ones(len(r))
    smooth = PROFILE_SMOOTHING_MINUTES * bars_per_day // (24 * 60)  # in bars: 2 for 5-minute bars
    if events is not None:
        first = GarchTOD.fit(r, bid, fit_bars, bars_per_day, profile_smoothing=smooth)
        lags = release_lags(events)
        table = release_table((r / first.profile[bid]) ** 2, lags, fit_bars)
        mult = apply_release_table(table, lags)
    return AnchorFit(GarchTOD.fit(r / np.sqrt(mult), bid, fit_bars, bars_per_day, profile_smoothing=smooth), table)


def _filtered(fit: AnchorFit, returns: np.ndarray, bar_in_day: np.ndarray,
              events: np.ndarray | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """-> (bar_in_day as int64, sigma2_next (N,) of the normalised return, release multiplier (N,))."""
    if (events is None) != (fit.releases is None):
        raise MigtError("data.event_calendar: the stored volatility anchor was fitted "
                        f"{'with' if fit.releases is not None else 'without'} the release calendar; use the run's setting")
    r = np.asarray(returns, dtype=np.float64)
    bid = np.asarray(bar_in_day, dtype=np.int64)
    if bid.max(initial=0) >= len(fit.garch.profile):
        raise MigtError(f"bar_in_day: values up to {int(bid.max())} but the anchor was fitted on {len(fit.garch.profile)} bars a day "
                        "(data.bar_minutes differs from the run's?)")
    mult = np.ones(len(r)) if fit.releases is None else apply_release_table(fit.releases, release_lags(events))
    return bid, fit.garch.filter_variance(r / np.sqrt(mult), bid), mult


def apply_anchor(fit: AnchorFit, returns: np.ndarray, bar_in_day: np.ndarray, horizons: Sequence[int],
                 events: np.ndarray | None = None) -> np.ndarray:
    """(N, H) float32 std of each horizon's log return from each row, the variance filtered through every bar
    with the fit's parameters fixed (row t uses bars <= t and the calendar of the bars after it). The last
    max(horizons) rows, which have no following bars in the arrays, repeat the last computable row: a
    forecast passes the calendar of future bars by extending bar_in_day and events (returns there unused)."""
    bid, sigma2_next, mult = _filtered(fit, returns, bar_in_day, events)
    n, k_max = len(bid), int(max(horizons))
    out = np.empty((n, len(horizons)), dtype=np.float32)
    room = max(n - k_max, 0)
    # each future bar's variance also times its release multiplier
    out[:room] = fit.garch.horizon_std(sigma2_next, bid, np.arange(room), horizons,
                                       None if fit.releases is None else mult)
    out[room:] = out[room - 1] if room else 1.0
    return out


def anchor_sigma(fit: AnchorFit, returns: np.ndarray, bar_var: np.ndarray, bar_in_day: np.ndarray,
                 timestamps: np.ndarray, horizons: Sequence[int], events: np.ndarray | None = None,
                 train_rows: np.ndarray | None = None, fit_bars: slice | None = None) -> np.ndarray:
    """(N, H) float32 anchor: the GARCH-t/time-of-day std (apply_anchor) corrected by the bars' range
    (HARAnchor). train_rows / fit_bars given and no correction in the fit yet: fit it there (and keep it in
    `fit`); a stored fit without one (an older run) is the GARCH anchor alone."""
    sigma = apply_anchor(fit, returns, bar_in_day, horizons, events)
    bid = np.asarray(bar_in_day, dtype=np.int64)
    if fit.har is None and train_rows is not None and fit_bars is not None:
        fit.har = HARAnchor.fit(bar_var, timestamps, bid, sigma, train_rows, fit_bars, len(fit.garch.profile), horizons)
    if fit.har is None:
        return sigma
    out = fit.har.apply(bar_var, timestamps, bid, sigma, horizons)
    room = max(len(bid) - int(max(horizons)), 0)
    out[room:] = out[room - 1] if room else sigma[room:]  # as apply_anchor: rows without the bars ahead
    return out


def anchor_realized_context(fit: AnchorFit, returns: np.ndarray, gk: np.ndarray, volume: np.ndarray,
                            bar_in_day: np.ndarray, timestamps: np.ndarray, events: np.ndarray | None = None) -> np.ndarray:
    """(N, N_REALIZED) float32: the log ratios of the bars' realised range variance (gk, Garman-Klass) to the
    one-bar variance the anchor expected for them, then of their volume to the training volume of their times of
    day, over the context slices of volatility/realized.py (the bar, quarter hours of trading back to two hours,
    the two hours before, the day, the week); then their return in units of the anchor's expected std over HAR's
    windows: what the range, the volume and the direction of the moves tell beyond the GARCH on closes. Row t
    uses bars <= t."""
    bid, sigma2_next, mult = _filtered(fit, returns, bar_in_day, events)
    before = np.concatenate([[fit.garch.init_variance], sigma2_next[:-1]])  # bar t's variance, made at t - 1
    expected = fit.garch.profile[bid] ** 2 * before * mult
    bar_minutes = 24 * 60 // len(fit.garch.profile)  # the profile has a slot per bar of the day
    return np.concatenate([realized_ratios(gk, expected, timestamps, CONTEXT_SLICES, bar_minutes),
                           volume_ratios(volume, fit.volume, bid, timestamps, CONTEXT_SLICES, bar_minutes),
                           signed_moves(returns, expected, timestamps)], axis=1)


def clip_context(fit: AnchorFit, realized: np.ndarray, train_rows: np.ndarray | None = None) -> np.ndarray:
    """The context (N, N_REALIZED) with each column clipped to its range on the training rows (fitted there into
    `fit` when given and the fit has none yet; a stored fit without one, an older run, is left unclipped).

    The heads' correction is linear in the context, so outside the values training saw it extrapolates: a US
    holiday's session trades far below the volume profile of ordinary days, and a volume weight fitted on
    ordinary weeks widened the long horizons' forecasts there well past the returns (docs/results.md,
    "2026-12-07, night")."""
    if fit.context_range is None and train_rows is not None:
        fit.context_range = np.quantile(realized[train_rows], [CONTEXT_TAIL, 1.0 - CONTEXT_TAIL], axis=0).astype(np.float32)
    if fit.context_range is None:
        return realized
    return np.clip(realized, fit.context_range[0], fit.context_range[1])


def volatility_anchor(
    returns: np.ndarray, bar_in_day: np.ndarray, fit_bars: slice, bars_per_day: int, horizons: Sequence[int],
    events: np.ndarray | None = None,
) -> tuple[np.ndarray, GarchTOD]:
    """returns (N,) one-bar log returns, bar_in_day (N,), fit_bars: the training bars, events (N,) release
    class ids or None -> ((N, H) float32 std of each horizon's log return from each row, the fitted model).
    The last max(horizons) rows, which are never samples, repeat the last computable row."""
    fit = fit_anchor(returns, bar_in_day, fit_bars, bars_per_day, events)
    return apply_anchor(fit, returns, bar_in_day, horizons, events), fit.garch


def anchor_json(fit: AnchorFit | Mapping[str, AnchorFit]) -> dict[str, Any]:
    """What vol_anchor.json holds: the fit, or for a pooled run {"instruments": {name: fit}} (each fitted on its
    own instrument's training bars)."""
    if isinstance(fit, AnchorFit):
        return fit.to_json()
    return {"version": ANCHOR_FIT_VERSION, "instruments": {name: f.to_json() for name, f in fit.items()}}


def read_anchor_fit(run_dir: Path) -> AnchorFit | dict[str, AnchorFit]:
    """A run's stored anchor fit ({name: fit} for a pooled run); one MigtError when a run trained with
    data.vol_anchor lacks it."""
    path = Path(run_dir) / ANCHOR_FILE
    d = read_run_file(path, "the run was trained with data.vol_anchor=true but its fitted volatility anchor was not "
                            "stored (a run from before vol_anchor.json existed); retrain it to forecast with it")
    if isinstance(d, Mapping) and isinstance(d.get("instruments"), Mapping):
        return {str(name): AnchorFit.from_json(f, f"{path} ({name})") for name, f in d["instruments"].items()}
    return AnchorFit.from_json(d, str(path))
