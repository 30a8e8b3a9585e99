"""CME Globex session calendar in exchange time: trading-day labels, bar-in-day, synthetic sessions."""

from __future__ import annotations

import numpy as np
import pandas as pd

from migt_train.errors import MigtError

# Globex equity futures trade 18:00 -> 17:00 ET next day: 23 h, the 17:00-18:00 hour is the daily break.
GLOBEX_SESSION_MINUTES = 23 * 60


def parse_hhmm(value: str | int, key: str = "data.session_start") -> int:
    """'18:00' -> minutes after midnight. An int is taken as minutes (YAML 1.1 reads an unquoted
    18:00 as the sexagesimal 1080, which is exactly that)."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        minutes = int(value)
    else:
        try:
            hh, mm = str(value).strip().split(":")
            minutes = int(hh) * 60 + int(mm)
        except ValueError:
            raise MigtError(f"{key}: expected HH:MM, got {value!r}") from None
    if not 0 <= minutes < 1440:
        raise MigtError(f"{key}: time of day out of range, got {value!r}")
    return minutes


def check_timezone(tz: str, key: str = "data.session_tz") -> str:
    try:
        pd.Timestamp("2024-01-01", tz=tz)
    except Exception:
        raise MigtError(f"{key}: unknown time zone {tz!r}") from None
    return tz


def to_local(ts_utc: np.ndarray, tz: str) -> pd.DatetimeIndex:
    """datetime64[ns] UTC (naive) -> naive wall-clock DatetimeIndex in `tz`."""
    return pd.DatetimeIndex(ts_utc).tz_localize("UTC").tz_convert(tz).tz_localize(None)


def _since_start(ts_utc: np.ndarray, tz: str, session_start: int) -> pd.DatetimeIndex:
    return to_local(ts_utc, tz) - pd.Timedelta(minutes=session_start)


def _day(since_start: pd.DatetimeIndex, session_start: int) -> pd.DatetimeIndex:
    # an evening open (Globex 18:00) starts the next calendar day's session; a morning open its own day's
    shift = pd.Timedelta(days=1) if session_start >= 12 * 60 else pd.Timedelta(0)
    return (since_start + shift).normalize()


def trading_day(ts_utc: np.ndarray, tz: str, session_start: int) -> np.ndarray:
    """datetime64[D] trading day of each bar (the rule of time_info)."""
    return _day(_since_start(ts_utc, tz, session_start), session_start).to_numpy().astype("datetime64[D]")


def minute_of_session(ts_utc: np.ndarray, tz: str, session_start: int) -> np.ndarray:
    """Minutes since the latest session start in exchange time, 0..1439 (int64)."""
    since = _since_start(ts_utc, tz, session_start)
    return (since.hour * 60 + since.minute).to_numpy().astype(np.int64)


def in_session(ts_utc: np.ndarray, tz: str, session_start: int, session_end: int) -> np.ndarray:
    """True for bars that start inside [session_start, session_end) in exchange time (overnight allowed)."""
    length = (session_end - session_start) % 1440 or 1440
    return minute_of_session(ts_utc, tz, session_start) < length


def time_info(ts_utc: np.ndarray, tz: str, session_start: int, bar_minutes: int) -> dict[str, np.ndarray]:
    """bar_in_day (bars since the session start), day_of_week (0=Mon), day_of_month, day_of_year of the
    trading day each bar belongs to (with an evening session_start, a Sunday 18:00 bar is Monday's)."""
    since_start = _since_start(ts_utc, tz, session_start)
    minute = (since_start.hour * 60 + since_start.minute).to_numpy()
    day = _day(since_start, session_start)
    return {
        "bar_in_day": (minute // bar_minutes).astype(np.int64),
        "day_of_week": day.day_of_week.to_numpy().astype(np.int64),
        "day_of_month": day.day.to_numpy().astype(np.int64),
        "day_of_year": day.day_of_year.to_numpy().astype(np.int64),
    }


def globex_bars(
    start: str, n_days: int, bar_minutes: int, tz: str, session_start: int
) -> tuple[np.ndarray, np.ndarray]:
    """Bar open times of n_days Globex trading days (Mon-Fri) from `start`.

    Trading day D runs from D-1 at session_start to GLOBEX_SESSION_MINUTES later (18:00 -> 17:00 ET),
    so Monday opens Sunday evening and weekends are closed. Returns (UTC datetime64[ns], local minute of
    day of each bar open).
    """
    try:
        days = pd.bdate_range(pd.Timestamp(start), periods=n_days)
    except (ValueError, TypeError):
        raise MigtError(f"data.synthetic.start: not a date: {start!r}") from None
    offsets = np.arange(0, GLOBEX_SESSION_MINUTES - bar_minutes + 1, bar_minutes)
    opens = days - pd.Timedelta(days=1) + pd.Timedelta(minutes=session_start)
    local = pd.DatetimeIndex((opens.to_numpy()[:, None] + offsets.astype("timedelta64[m]")[None, :]).ravel())
    # DST switches happen at 02:00 on Sundays, while the market is closed; NaT only for odd session_start
    aware = local.tz_localize(tz, ambiguous="NaT", nonexistent="NaT")
    keep = ~aware.isna()
    utc = aware[keep].tz_convert("UTC").tz_localize(None).as_unit("ns").to_numpy()
    minute = (local.hour * 60 + local.minute).to_numpy()[keep]
    return utc, minute.astype(np.int64)
