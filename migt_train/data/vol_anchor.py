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

from typing import Sequence

import numpy as np

from migt_train.data.events import EVENT_CLASSES, EVENT_GROUPS
from migt_train.data.volatility import GarchTOD

RELEASE_LAGS = 12  # bars after a release (the release bar is lag 0) that get their own multiplier
RELEASE_PRIOR = 5.0  # shrinkage: pseudo-observations at multiplier 1 per (group, lag)


def release_lags(events: np.ndarray, max_lag: int = RELEASE_LAGS) -> np.ndarray:
    """(N,) class ids -> (G, N) bars since the group's last release (the release bar is 0), -1 if none
    within max_lag bars. Known in advance for future bars: the schedule is public."""
    n = len(events)
    idx = np.arange(n)
    out = np.full((len(EVENT_GROUPS), n), -1, dtype=np.int64)
    ids = {name: cid for cid, name in enumerate(EVENT_CLASSES, start=1)}
    for g, group in enumerate(EVENT_GROUPS):
        hit = np.isin(events, [ids[c] for c in group])
        last = np.maximum.accumulate(np.where(hit, idx, -1))
        lag = idx - last
        out[g] = np.where((last >= 0) & (lag <= max_lag), lag, -1)
    return out


def release_multiplier(u: np.ndarray, lags: np.ndarray, fit_bars: slice, prior: float = RELEASE_PRIOR) -> np.ndarray:
    """u (N,) squared profile-normalised returns, lags (G, N) -> (N,) variance multiplier, 1 away from
    releases: 1 + sum over groups of (m[g, lag] - 1), m estimated on fit_bars with shrinkage to 1."""
    fit_u, fit_lags = u[fit_bars], lags[:, fit_bars]
    quiet = (fit_lags < 0).all(axis=0)
    base = float(fit_u[quiet].mean()) if quiet.any() else float(fit_u.mean())
    mult = np.ones(len(u))
    for g in range(lags.shape[0]):
        sums = np.bincount(fit_lags[g][fit_lags[g] >= 0], weights=fit_u[fit_lags[g] >= 0], minlength=RELEASE_LAGS + 1)
        counts = np.bincount(fit_lags[g][fit_lags[g] >= 0], minlength=RELEASE_LAGS + 1)
        m = (sums / base + prior) / (counts + prior)
        at = lags[g] >= 0
        mult[at] += m[lags[g][at]] - 1.0
    return np.maximum(mult, 0.2)


def volatility_anchor(
    returns: np.ndarray, bar_in_day: np.ndarray, fit_bars: slice, bars_per_day: int, horizons: Sequence[int],
    events: np.ndarray | None = None,
) -> tuple[np.ndarray, GarchTOD]:
    """returns (N,) one-bar log returns, bar_in_day (N,), fit_bars: the training bars, events (N,) release
    class ids or None -> ((N, H) float32 std of each horizon's log return from each row, the fitted model).
    The last max(horizons) rows, which are never samples, repeat the last computable row."""
    r = np.asarray(returns, dtype=np.float64)
    bid = np.asarray(bar_in_day, dtype=np.int64)
    mult = np.ones(len(r))
    if events is not None:
        first = GarchTOD.fit(r, bid, fit_bars, bars_per_day)
        mult = release_multiplier((r / first.profile[bid]) ** 2, release_lags(events), fit_bars)
    scaled = r / np.sqrt(mult)
    garch = GarchTOD.fit(scaled, bid, fit_bars, bars_per_day)
    sigma2_next = garch.filter_variance(scaled, bid)
    n, k_max = len(r), int(max(horizons))
    out = np.empty((n, len(horizons)), dtype=np.float32)
    room = max(n - k_max, 0)
    if events is None:
        out[:room] = garch.horizon_std(sigma2_next, bid, np.arange(room), horizons)
    else:
        # GarchTOD.horizon_std's sum with each future bar's variance also times its release multiplier
        phi, k = garch.persistence, np.arange(k_max)
        geo = np.concatenate([[0.0], np.cumsum(phi ** k[:-1])])
        h_idx = np.asarray(horizons, dtype=np.int64) - 1
        for lo in range(0, room, 8192):
            rows = np.arange(lo, min(lo + 8192, room))
            ahead = rows[:, None] + 1 + k
            expected = garch.omega * geo + (phi**k) * sigma2_next[rows, None]
            cum = np.cumsum(garch.profile[bid[ahead]] ** 2 * mult[ahead] * expected, axis=1)
            out[rows] = np.sqrt(cum[:, h_idx])
    out[room:] = out[room - 1] if room else 1.0
    return out, garch
