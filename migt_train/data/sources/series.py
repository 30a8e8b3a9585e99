"""A file's table -> the bar series a run reads: one contract series (rolls.py), bars labelled by their UTC
start at data.bar_minutes (aggregate.py), the session kept, and segments cut at rolls and at long gaps.
Training (build.load_market), forecasting (latest.latest_market) and export all go through `series_bars`,
so the three read the same bars."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from migt_train.data.sources.aggregate import NS_PER_MINUTE, to_bar_size, to_bar_starts
from migt_train.data.sources.calendar import in_session
from migt_train.data.sources.rolls import continuous_series

if TYPE_CHECKING:
    from migt_train.data.schema import DataSchema

log = logging.getLogger(__name__)

# A hole longer than this is not a market's usual break: weekends and holidays close an exchange for at most
# a long weekend (Thursday's close to Monday's open is under 4 days). Returns and windows do not span it.
GAP_DAYS = 4
# One bar moving more than this (|log| of close to close, or of high to low: about 22%) is reported: index
# futures halt at 20% in a day; a misplaced decimal point or a bad tick moves far more.
EXTREME_LOG_MOVE = 0.2


@dataclass
class SeriesBars:
    bars: pd.DataFrame  # timestamp (bar start, UTC, naive datetime64[ns]), open, high, low, close, volume
    segment: np.ndarray  # (N,) int64, increasing: a new id after each roll and each long gap
    record: dict | None  # the roll record (rolls.json); None for the synthetic market
    contract: np.ndarray | None  # (N,) the contract each bar comes from; None when the file names none
    last_minutes: float  # minutes of the last bar that the file's rows cover (its size when complete)


def series_bars(raw: pd.DataFrame, s: DataSchema, source: str, trained: bool = False) -> SeriesBars:
    """read_ohlcv's table -> SeriesBars (`trained`: s.bar_minutes is a trained run's, for forecasting)."""
    series = continuous_series(raw, s.symbol, s.session_tz, s.start_minute, source)
    bars, spacing = to_bar_starts(series.bars, series.segment, s.timestamp_label)
    segment = series.segment
    if s.end_minute is not None:
        keep = in_session(bars["timestamp"].to_numpy(), s.session_tz, s.start_minute, s.end_minute)
        log.info("%s: %d of %d bars outside the session dropped", source, int((~keep).sum()), len(keep))
        bars, segment = bars[keep].reset_index(drop=True), segment[keep]
    source_end = _ns(bars["timestamp"])[-1] + (spacing or s.bar_minutes * NS_PER_MINUTE) if len(bars) else 0
    bars, segment = to_bar_size(bars, segment, spacing, s.bar_minutes, s.session_tz, s.start_minute, source, trained)
    last_minutes = 0.0
    if len(bars):
        last_minutes = min(float(s.bar_minutes), (source_end - _ns(bars["timestamp"])[-1]) / NS_PER_MINUTE)
    contract = np.asarray(series.segment_contracts, dtype=object)[segment] if series.segment_contracts else None
    segment = cut_at_gaps(_ns(bars["timestamp"]), segment, source)
    report_extreme_moves(bars, segment, source)
    return SeriesBars(bars, segment, series.record(), contract, last_minutes)


def _ns(ts: pd.Series) -> np.ndarray:
    return ts.to_numpy().astype("datetime64[ns]").astype(np.int64)


def cut_at_gaps(ts_ns: np.ndarray, segment: np.ndarray, source: str) -> np.ndarray:
    """A new segment after every hole longer than GAP_DAYS (logged): a target or a window across five missing
    weeks would pass for a 4-hour return or a 24-hour lookback."""
    step = np.diff(ts_ns)
    long = (step > GAP_DAYS * 1440 * NS_PER_MINUTE) & (segment[1:] == segment[:-1])
    if not long.any():
        return segment
    at = np.flatnonzero(long)
    fmt = lambda ns: pd.Timestamp(int(ns)).strftime("%Y-%m-%d %H:%M")  # noqa: E731
    shown = ", ".join(f"{fmt(ts_ns[i])} to {fmt(ts_ns[i + 1])} UTC ({step[i] / (1440 * NS_PER_MINUTE):.1f} days)"
                      for i in at[:3]) + (", ..." if len(at) > 3 else "")
    log.warning("%s: %d gap%s longer than %d days in the data (%s); no window or target spans %s, as at a roll",
                source, len(at), "s" if len(at) > 1 else "", GAP_DAYS, shown, "them" if len(at) > 1 else "it")
    return (segment + np.r_[0, np.cumsum(long)]).astype(np.int64)


def report_extreme_moves(bars: pd.DataFrame, segment: np.ndarray, source: str) -> None:
    """Warn about bars that move more than EXTREME_LOG_MOVE, with their times: one bad tick inflates every
    volatility feature and the validation loss of the windows around it."""
    if len(bars) == 0:
        return
    logc = np.log(bars["close"].to_numpy(np.float64))
    bad = np.log(bars["high"].to_numpy(np.float64) / bars["low"].to_numpy(np.float64)) > EXTREME_LOG_MOVE
    bad[1:] |= (np.abs(np.diff(logc)) > EXTREME_LOG_MOVE) & (segment[1:] == segment[:-1])
    if not bad.any():
        return
    times = pd.DatetimeIndex(bars["timestamp"].to_numpy()[bad][:5]).strftime("%Y-%m-%d %H:%M")
    n = int(bad.sum())
    log.warning("%s: %d bar%s move more than %.0f%% (close to close or high to low): %s%s UTC; a misplaced decimal "
                "point or a bad tick? check the file there", source, n, "s" if n > 1 else "",
                (np.exp(EXTREME_LOG_MOVE) - 1) * 100, ", ".join(times), ", ..." if n > 5 else "")
