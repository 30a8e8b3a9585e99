"""The causal volatility anchor: per row and horizon, the GARCH-t/time-of-day std of the h-bar return.

Parameters (time-of-day profile, GARCH(1,1)-t) are fitted on the bars the training windows see; the
variance is then filtered through every bar with those parameters fixed, so row t's anchor uses bars
<= t and the calendar of the bars that follow (known in advance). The model takes it as input and as
the spread its quantile heads start from (model.vol_anchor), which gives a 24 h window the memory of
a volatility level that persists for weeks.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from migt_train.data.volatility import GarchTOD


def volatility_anchor(
    returns: np.ndarray, bar_in_day: np.ndarray, fit_bars: slice, bars_per_day: int, horizons: Sequence[int]
) -> tuple[np.ndarray, GarchTOD]:
    """returns (N,) one-bar log returns, bar_in_day (N,), fit_bars: the training bars -> ((N, H) float32 std
    of each horizon's log return from each row, the fitted model). The last max(horizons) rows, which are
    never samples, repeat the last computable row."""
    garch = GarchTOD.fit(returns, bar_in_day, fit_bars, bars_per_day)
    sigma2_next = garch.filter_variance(returns, bar_in_day)
    n, k = len(returns), int(max(horizons))
    out = np.empty((n, len(horizons)), dtype=np.float32)
    room = max(n - k, 0)
    out[:room] = garch.horizon_std(sigma2_next, bar_in_day, np.arange(room), horizons)
    out[room:] = out[room - 1] if room else 1.0
    return out, garch
