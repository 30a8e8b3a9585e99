"""The light path for forecasting: bars -> features -> windows ending at the latest bars. No horizons of
future data, no splits, no cache: a file needs only the feature warm-up plus one lookback window."""

from __future__ import annotations

import logging
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from migt_train.data.assemble import anchor_fit_of, model_instruments, with_cross_inputs
from migt_train.data.build import featurise, horizon_context, long_tensor, market_fields
from migt_train.data.instruments import sources
from migt_train.data.pooled import pool_markets
from migt_train.data.schema import DataSchema
from migt_train.data.sources.calendar import time_info
from migt_train.data.features import FEATURE_WARMUP
from migt_train.data.market import MarketData
from migt_train.data.sources.ohlcv import parse_ohlcv
from migt_train.data.sources.series import SeriesBars, series_bars
from migt_train.data.returns import log_return_targets, segment_first_rows, window_starts
from migt_train.volatility.anchor import AnchorFit
from migt_train.errors import MigtError

log = logging.getLogger(__name__)

SPLIT = "forecast"
PARTIAL = "partial"  # the forecast row of a bar still forming, when asked for (else empty)
OHLCV_COLUMNS = ["timestamp", "open", "high", "low", "close", "volume"]


def future_bar_starts(ts: np.ndarray, n: int, s: DataSchema) -> np.ndarray:
    """Open times of the n bars after the last one: the next slots of the bar grid whose (weekday, bar of
    day) the bars have traded in (so weekends and the daily break are skipped as the data skips them;
    exchange holidays are not known). Their calendar is public in advance: the releases and bars of day
    inside the last rows' horizons."""
    step = np.timedelta64(s.bar_minutes, "m").astype("timedelta64[ns]")
    slots = n + 8 * 24 * 60 // s.bar_minutes  # n traded bars lie within the next n bars plus a long weekend
    seen_info = time_info(ts, s.session_tz, s.start_minute, s.bar_minutes)
    seen = set(zip(seen_info["day_of_week"].tolist(), seen_info["bar_in_day"].tolist()))
    grid = ts[-1] + step * np.arange(1, slots + 1)
    info = time_info(grid, s.session_tz, s.start_minute, s.bar_minutes)
    keys = info["day_of_week"] * (24 * 60 // s.bar_minutes) + info["bar_in_day"]
    seen_keys = np.array([d * (24 * 60 // s.bar_minutes) + b for d, b in seen], dtype=np.int64)
    traded = np.isin(keys, seen_keys)
    if traded.sum() < n:  # a short file has not shown every weekday yet: any traded bar of day will do
        traded = np.isin(info["bar_in_day"], seen_info["bar_in_day"])
    return grid[traded][:n]


def _still_forming(series: SeriesBars, bar_minutes: int, source: str, partial: bool,
                   now: np.datetime64 | None) -> bool:
    """Whether the last bar is still forming: the file's rows cover only part of its span (1-minute rows up to
    11:37 of the 11:35 bar), or its end is still ahead of `now`. Said in the log either way."""
    if len(series.bars) == 0:
        return False
    start = series.bars["timestamp"].to_numpy().astype("datetime64[ns]")[-1]
    now = np.datetime64(pd.Timestamp.now(tz="UTC").tz_localize(None), "ns") if now is None else now
    covered = min(series.last_minutes, (now - start) / np.timedelta64(1, "m"))
    if covered >= bar_minutes:
        return False
    held = f"the bar starting {pd.Timestamp(start):%Y-%m-%d %H:%M} UTC holds {max(covered, 0):g} of its {bar_minutes} minutes"
    if partial:
        log.warning("%s: forecasting from a bar still forming: %s (its close, high, low and volume are not final)",
                    source, held)
    else:
        log.info("%s: %s: forecasting from the bar before it (ask for partial bars to use it)", source, held)
    return True


def latest_market(cfg: Any, table: pd.DataFrame | Mapping[str, pd.DataFrame] | None = None, last: int | None = 1,
                  anchor_fit: AnchorFit | Mapping[str, AnchorFit] | None = None, partial: bool = False,
                  now: np.datetime64 | None = None, instruments: Sequence[str] | None = None,
                  cross_body: bool | None = None) -> MarketData:
    """cfg: the run's data config (its data.path is read unless `table` is given: a frame as read_ohlcv
    would read the file, or {name: frame} for a pooled run; with data.source=synthetic and no table, the run's
    own synthetic market). anchor_fit: the run's stored volatility anchor ({name: fit} for a pooled run),
    required when data.vol_anchor is on (filtered through these bars with its parameters fixed, never
    refitted). instruments: a pooled run's instrument names (its model's ids); cross_body as load_market's. -> MarketData whose
    `splits["forecast"]` holds, per instrument, the last `last` rows that have a full lookback in the latest
    contract segment (all such rows of every segment when last is None). Targets are the realised log returns
    where the data reaches far enough, NaN where the future is unknown.
    The last bar is still forming when the file's rows do not cover its whole span or it ends after `now`
    (default: the clock): it is left out unless `partial`; then `splits["partial"]` holds its row.
    """
    s = DataSchema.from_config(cfg, need_path=table is None)
    if s.vol_anchor and anchor_fit is None:
        raise MigtError("data.vol_anchor: the model forecasts from the volatility anchor fitted on its training bars, "
                        "but no stored fit was given (load the run with migt_train.load_run)")
    inputs = _latest_series(cfg, s, table)
    names = [name for name, _, _ in inputs]
    model_names = model_instruments(names, instruments, s.cross_asset)
    markets = {name: _latest_one(s, label, series, last, partial, now,
                                 anchor_fit if not model_names else anchor_fit_of(anchor_fit, str(name)))
               for name, label, series in inputs}
    if not model_names:
        return markets[names[0]]
    if s.cross_asset:
        markets = with_cross_inputs(markets, model_names, cross_body)
    return pool_markets(markets, model_names)


def _latest_series(cfg: Any, s: DataSchema, table: Any) -> list[tuple[str | None, str, SeriesBars]]:
    """[(name, label, bars)] of every instrument to forecast: the given frames, else the run's sources."""
    if table is not None:
        frames = dict(table) if isinstance(table, Mapping) else {None: table}
        out = []
        for name, frame in frames.items():
            label = "frame" if name is None else f"frame {name}"
            raw = parse_ohlcv(frame, label, sort=s.sort, timezone=s.timezone)
            out.append((name, label, series_bars(raw, s, label, trained=True)))
        return out
    if s.source == "synthetic":
        return [(src.name, src.label, SeriesBars(src.raw()[OHLCV_COLUMNS].reset_index(drop=True),
                                                 np.zeros(len(src.raw()), np.int64), None, None, float(s.bar_minutes)))
                for src in sources(cfg, s, trained=True) if src.raw is not None]
    return [(src.name, src.label, src.read()) for src in sources(cfg, s, trained=True)]


def _latest_one(s: DataSchema, source: str, series: SeriesBars, last: int | None, partial: bool,
                now: np.datetime64 | None, anchor_fit: AnchorFit | None) -> MarketData:
    """One instrument's bars -> its MarketData with the forecast rows (see latest_market)."""
    bars, segment, record = series.bars, series.segment, series.record
    forming = _still_forming(series, s.bar_minutes, source, partial, now)
    if forming and not partial:
        bars, segment = bars.iloc[:-1].reset_index(drop=True), segment[:-1]
    if last is not None:  # only the latest contract matters; its earlier bars still warm up the features
        keep = segment == segment[-1]
        bars, segment = bars[keep].reset_index(drop=True), segment[keep]
    frame = featurise(bars, segment, source)

    lookback_bars = min(s.max_seq_len, int(s.lookback_hours * 60 // s.bar_minutes))
    ts = frame["timestamp"].to_numpy().astype("datetime64[ns]")
    seg = frame["_segment"].to_numpy()
    start, full = window_starts(ts, int(round(s.lookback_hours * 3600e9)), s.max_seq_len, segment_first_rows(seg))
    rows = np.flatnonzero(full)
    if last is not None:
        rows = rows[seg[rows] == seg[-1]][-int(last):]
    if len(rows) == 0:
        raise MigtError(
            f"{source}: too few bars ({len(bars)} rows in the latest contract): a forecast needs feature warm-up "
            f"{FEATURE_WARMUP} + one lookback of {lookback_bars} bars = {FEATURE_WARMUP + lookback_bars}"
        )
    info = time_info(ts, s.session_tz, s.start_minute, s.bar_minutes)
    targets = log_return_targets(frame["_close"].to_numpy(), s.horizons, seg)
    future = future_bar_starts(ts, max(s.horizons), s) if s.vol_anchor or s.event_calendar else None
    context, _ = horizon_context(s, ts, frame, info["bar_in_day"], anchor_fit,
                                 future=future)
    partial_rows = rows[rows == len(frame) - 1] if forming and partial else rows[:0]
    market = MarketData(
        **context,
        anchor_fit=anchor_fit,
        **market_fields(s, frame, ts, info, start, targets),
        splits={SPLIT: long_tensor(rows), PARTIAL: long_tensor(partial_rows)},
        source=s.source,
        rolls=record,
        close=frame["_close"].to_numpy(np.float64),
    )
    return market
