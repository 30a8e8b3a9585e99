"""The light path for forecasting: bars -> features -> windows ending at the latest bars. No horizons of
future data, no splits, no cache: a file needs only the feature warm-up plus one lookback window."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from migt_train.data.build import _long, _settings, featurise, series_bars
from migt_train.data.calendar import time_info
from migt_train.data.features import FEATURE_NAMES, FEATURE_WARMUP
from migt_train.data.market import MarketData
from migt_train.data.ohlcv import parse_ohlcv, read_ohlcv
from migt_train.data.targets import horizon_name, log_return_targets, segment_first_rows, window_starts
from migt_train.errors import MigtError

SPLIT = "forecast"


def latest_market(cfg: Any, table: pd.DataFrame | None = None, last: int | None = 1) -> MarketData:
    """cfg: the run's data config (its data.path is read unless `table` is given: a frame as read_ohlcv
    would read the file). -> MarketData whose `splits["forecast"]` holds the last `last` rows that have a
    full lookback in the latest contract segment (all such rows of every segment when last is None).
    Targets are the realised log returns where the data reaches far enough, NaN where the future is unknown.
    """
    s = _settings(cfg, need_path=table is None)
    if s.source != "ohlcv" and table is None:
        raise MigtError(f"data.source={s.source}: forecasts need bars: pass a frame or data.path of a file")
    if table is None:
        path = Path(str(s.path)).expanduser()
        source = str(path)
        raw = read_ohlcv(path, sort=s.sort, timezone=s.timezone)
    else:
        source = "frame"
        raw = parse_ohlcv(table, source, sort=s.sort, timezone=s.timezone)
    bars, segment, record = series_bars(raw, s, source)
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
    info = time_info(ts, s.tz, s.session_start, s.bar_minutes)
    targets = log_return_targets(frame["_close"].to_numpy(), s.horizons, seg)
    market = MarketData(
        features=torch.from_numpy(np.ascontiguousarray(frame[FEATURE_NAMES].to_numpy(np.float32))),
        feature_names=list(FEATURE_NAMES),
        timestamps=ts,
        bar_in_day=_long(info["bar_in_day"]),
        day_of_week=_long(info["day_of_week"]),
        day_of_month=_long(info["day_of_month"]),
        day_of_year=_long(info["day_of_year"]),
        window_start=_long(start),
        targets=torch.from_numpy(targets.astype(np.float32)),
        horizons=list(s.horizons),
        horizon_names=[horizon_name(h, s.bar_minutes) for h in s.horizons],
        bar_minutes=s.bar_minutes,
        max_seq_len=s.max_seq_len,
        splits={SPLIT: _long(rows)},
        source=s.source,
        rolls=record,
        close=frame["_close"].to_numpy(np.float64),
    )
    return market
