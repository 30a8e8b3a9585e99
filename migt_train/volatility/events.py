"""Scheduled US macro releases: a rules-based calendar that is public before the fact.

Release rules (US Eastern time; dates are the bar's local calendar date):
    employment  08:30 on the first Friday of the month (the payrolls report)
    cpi         08:30 on the first business day on or after the 13th
    minor       08:30 every Thursday (jobless claims) and the first business day on or after the 16th
                (retail sales), unless a larger release is at the same time
    fomc        14:00 on the third Wednesday of Jan, Mar, May, Jun, Jul, Sep, Nov and Dec (eight a year)

The synthetic market puts its volatility spikes exactly there. On real data the rules approximate the
true calendars (payrolls is right almost every month; CPI, retail sales and FOMC dates move around),
which is what a forecaster who does not maintain a release calendar would know in advance.

`event_bars` marks the bar that contains each release; `event_features` turns that into what a model
may know at a forecast origin: how many releases of each group fall inside each horizon (known in
advance) and how recently one happened (known from the past).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd
from scipy.signal import lfilter

EVENT_TZ = "America/New_York"
EVENT_CLASSES = ("employment", "cpi", "minor", "fomc")  # class id = index + 1; 0 = no release
EVENT_MINUTE = {"employment": 510, "cpi": 510, "minor": 510, "fomc": 840}
FOMC_MONTHS = (1, 3, 5, 6, 7, 9, 11, 12)
# groups a model sees: big 08:30 releases, small 08:30 releases, FOMC decisions
EVENT_GROUPS = (("employment", "cpi"), ("minor",), ("fomc",))
# two values per group: releases inside the horizon (ahead) and the decayed recency of the last one
N_EVENT_FEATURES = 2 * len(EVENT_GROUPS)
RECENCY_MINUTES = 30.0  # e-folding time of the recency feature


def _first_business_day_on_or_after(day: np.ndarray, weekday: np.ndarray, threshold: int) -> np.ndarray:
    """True on Mon-Fri dates that are the first business day with day-of-month >= threshold."""
    previous_business = day - np.where(weekday == 0, 3, 1)
    return (weekday < 5) & (day >= threshold) & (previous_business < threshold)


def release_class(dates: pd.DatetimeIndex) -> dict[str, np.ndarray]:
    """Local calendar dates -> {class: bool (n,)}: whether that class releases on the date."""
    day = dates.day.to_numpy()
    weekday = dates.day_of_week.to_numpy()
    month = dates.month.to_numpy()
    employment = (weekday == 4) & (day <= 7)
    cpi = _first_business_day_on_or_after(day, weekday, 13)
    minor = ((weekday == 3) | _first_business_day_on_or_after(day, weekday, 16)) & ~employment & ~cpi
    fomc = (weekday == 2) & (day >= 15) & (day <= 21) & np.isin(month, FOMC_MONTHS)
    return {"employment": employment, "cpi": cpi, "minor": minor, "fomc": fomc}


def event_bars(ts_utc: np.ndarray, bar_minutes: int) -> np.ndarray:
    """(n,) int8 class id (1-based index into EVENT_CLASSES) of the release inside each bar [open, open + bar),
    0 where none. ts_utc: bar open times, datetime64 UTC (naive)."""
    local = pd.DatetimeIndex(ts_utc).tz_localize("UTC").tz_convert(EVENT_TZ).tz_localize(None)
    minute = (local.hour * 60 + local.minute).to_numpy()
    classes = release_class(local.normalize())
    out = np.zeros(len(local), dtype=np.int8)
    for cid, name in enumerate(EVENT_CLASSES, start=1):
        at = EVENT_MINUTE[name]
        inside = classes[name] & (minute <= at) & (at < minute + bar_minutes)
        out = np.where(inside & (out == 0), cid, out).astype(np.int8)
    return out


def release_offset(ts_utc: np.ndarray, events: np.ndarray) -> np.ndarray:
    """Minutes from each event bar's open to its release (0 for bars that start at the release)."""
    local = pd.DatetimeIndex(ts_utc).tz_localize("UTC").tz_convert(EVENT_TZ).tz_localize(None)
    minute = (local.hour * 60 + local.minute).to_numpy()
    at = np.zeros(len(events), dtype=np.int64)
    for cid, name in enumerate(EVENT_CLASSES, start=1):
        at = np.where(events == cid, EVENT_MINUTE[name], at)
    return np.where(events > 0, at - minute, 0)


def group_hits(events: np.ndarray, group: Sequence[str]) -> np.ndarray:
    """(n,) class ids -> (n,) bool: the bars holding a release of one of the group's classes."""
    return np.isin(events, [EVENT_CLASSES.index(c) + 1 for c in group])


def decayed_after(impulse: np.ndarray, decay_bars: float) -> np.ndarray:
    """y[t] = impulse[t] + exp(-1 / decay_bars) * y[t-1]: an exponentially fading trace of impulses."""
    return lfilter([1.0], [1.0, -np.exp(-1.0 / decay_bars)], impulse)


def event_features(events: np.ndarray, horizons: Sequence[int], bar_minutes: int) -> np.ndarray:
    """(n,) class ids -> (n, H, N_EVENT_FEATURES) float32, per row t and horizon h:
    [releases of group g in bars t+1 .. t+h (known in advance) for each g,
     decayed recency of group g's last release at bars <= t (known from the past) for each g]."""
    n = len(events)
    out = np.zeros((n, len(horizons), N_EVENT_FEATURES), dtype=np.float32)
    for g, group in enumerate(EVENT_GROUPS):
        hit = group_hits(events, group).astype(np.float64)
        count = np.concatenate([[0.0], np.cumsum(hit)])  # count[i] = releases in bars < i
        for j, h in enumerate(horizons):
            end = np.minimum(np.arange(n) + 1 + h, n)
            out[:, j, g] = count[end] - count[np.arange(n) + 1]
        out[:, :, len(EVENT_GROUPS) + g] = decayed_after(hit, RECENCY_MINUTES / bar_minutes)[:, None]
    return out
