"""The `data.*` config keys, defined once: their types and defaults (DataSchema), their value rules
(`DataSchema.from_config`, one MigtError naming the first bad key) and the values derived from them.
conf/data/*.yaml sets the values of a run (tests/test_config.py checks that conf/data/synthetic.yaml
states exactly these defaults); migt_train.config.schema registers these dataclasses as `schema/data` in
Hydra's ConfigStore and merges the composed group onto it (types, unknown keys); data.build reads the
config through `DataSchema.from_config`, so a left-out or null key takes its default from here. The
horizons and the lookback are times: data.horizons and data.max_seq_len (bars) follow data.horizon_minutes,
data.lookback_hours and data.bar_minutes unless given (the yaml interpolates the ${migt.horizons:} and
${migt.lookback_bars:} resolvers, so model keys and the recorded config.yaml hold the bars)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, List, Mapping, Optional

TIMESTAMP_LABELS = ("start", "end")
HORIZON_MINUTES = [15, 30, 60, 120, 240]  # the forecast horizons are times; their bars follow data.bar_minutes


def _bar_minutes(bar_minutes: Any) -> int:
    from migt_train.errors import MigtError

    if isinstance(bar_minutes, bool) or not isinstance(bar_minutes, int) or bar_minutes < 1 or 1440 % bar_minutes:
        raise MigtError(f"config key 'data.bar_minutes': must be a positive divisor of 1440 (got {bar_minutes!r})")
    return bar_minutes


def bars_in(minutes: float, bar_minutes: int, key: str, in_bars: str) -> int:
    """The whole number of `bar_minutes` bars in `minutes`; a time that is not one is a MigtError naming `key`
    (and `in_bars`, the key that takes bars directly)."""
    from migt_train.errors import MigtError

    bars = float(minutes) / _bar_minutes(bar_minutes)
    if not bars >= 1 or abs(bars - round(bars)) > 1e-9:
        raise MigtError(f"config key '{key}': {float(minutes):g} minutes is not a whole number of {bar_minutes}-minute "
                        f"bars (data.bar_minutes); change it or give {in_bars} in bars")
    return int(round(bars))


def horizon_bars(horizon_minutes: Any, bar_minutes: int) -> list[int]:
    """data.horizons when not given: each of data.horizon_minutes in bars (the ${migt.horizons:} resolver)."""
    return [bars_in(m, bar_minutes, "data.horizon_minutes", "data.horizons") for m in horizon_minutes]


def lookback_bars(lookback_hours: float, bar_minutes: int) -> int:
    """data.max_seq_len when not given: data.lookback_hours in bars (the ${migt.lookback_bars:} resolver)."""
    return bars_in(float(lookback_hours) * 60, bar_minutes, "data.lookback_hours", "data.max_seq_len")


@dataclass
class SplitSchema:
    by: str = "fraction"  # fraction | date | all (scoring another file; not for training)
    val_fraction: float = 0.15
    test_fraction: float = 0.15
    val_start: Optional[str] = None
    test_start: Optional[str] = None


@dataclass
class DataSchema:
    source: str = "synthetic"  # synthetic | ohlcv
    # the bars file of data=ohlcv (parquet, CSV, DBN), or several instruments in one model: a map NAME -> file
    # or a list of files (names from the stems)
    path: Optional[Any] = None
    bar_minutes: int = 5
    lookback_hours: float = 24
    horizon_minutes: List[int] = field(default_factory=lambda: list(HORIZON_MINUTES))
    max_seq_len: Optional[int] = None  # in bars; null = lookback_hours in bars of bar_minutes
    horizons: Optional[List[int]] = None  # in bars; null = horizon_minutes in bars of bar_minutes
    session_tz: str = "America/New_York"  # the exchange's session clock
    session_start: str = "18:00"
    session_end: Optional[str] = None  # HH:MM; null keeps every bar of the file
    timezone: str = "UTC"  # zone of a file's naive timestamps
    timestamp_label: str = "start"  # start | end: what a bar's timestamp marks
    symbol: Optional[str] = None  # one contract of a multi-contract file; null = front-contract series
    sort: bool = False
    vol_anchor: bool = False  # the causal GARCH-t / time-of-day std per horizon (volatility/anchor.py)
    event_calendar: bool = False  # the scheduled-release features (volatility/events.py)
    cross_asset: bool = False  # several instruments: each window also sees the others' bars (data/cross_asset.py)
    cache_dir: Optional[str] = None  # null -> $MIGT_CACHE_DIR, else ~/.cache/migt_train
    split: SplitSchema = field(default_factory=SplitSchema)
    synthetic: Optional[Any] = None  # checked against data.synthetic.SyntheticConfig (data.build.synthetic_config)

    @classmethod
    def from_config(cls, cfg: Mapping | None, need_path: bool = True) -> "DataSchema":
        """The data config's values with defaults for left-out or null keys, checked: one MigtError naming
        the first bad key. `need_path`: data=ohlcv must name its file (not when a table is passed in)."""
        import numpy as np

        from migt_train.data.sources.calendar import check_timezone, parse_hhmm
        from migt_train.errors import MigtError

        def bad(key: str, rule: str, value: Any) -> MigtError:
            return MigtError(f"config key 'data.{key}': {rule} (got {value!r})")

        def positive_int(v: Any) -> bool:
            return not isinstance(v, bool) and isinstance(v, (int, np.integer)) and v >= 1

        v = {f.name: setting(cfg, f.name, cls) for f in dataclasses.fields(cls)}
        source = str(v["source"])
        if source not in ("synthetic", "ohlcv"):
            raise bad("source", "must be synthetic or ohlcv", source)
        if source == "ohlcv" and need_path and not v["path"]:
            raise bad("path", "data=ohlcv needs the path of a parquet or CSV file", v["path"])
        if source == "synthetic" and v["path"]:
            raise MigtError(f"config key 'data.path': {v['path']} is given but data.source is synthetic, so the "
                            "synthetic market would be used and the file ignored; add data=ohlcv to the command line "
                            "(data.source=ohlcv for evaluate and predict)")
        if not positive_int(v["bar_minutes"]) or 1440 % v["bar_minutes"]:
            raise bad("bar_minutes", "must be a positive divisor of 1440", v["bar_minutes"])
        bar = int(v["bar_minutes"])
        lookback = v["lookback_hours"]
        if isinstance(lookback, bool) or not isinstance(lookback, (int, float)) or lookback <= 0:
            raise bad("lookback_hours", "must be a positive number", lookback)
        minutes = list(v["horizon_minutes"])
        if not minutes or not all(positive_int(m) for m in minutes) or sorted(set(minutes)) != minutes:
            raise bad("horizon_minutes", "must be positive, distinct and increasing (in minutes)", minutes)
        max_seq_len = lookback_bars(lookback, bar) if v["max_seq_len"] is None else v["max_seq_len"]
        if not positive_int(max_seq_len):
            raise bad("max_seq_len", "must be a positive integer", max_seq_len)
        horizons = horizon_bars(minutes, bar) if v["horizons"] is None else list(v["horizons"])
        if not horizons or not all(positive_int(h) for h in horizons) or sorted(set(horizons)) != horizons:
            raise bad("horizons", "must be positive, distinct and increasing (in bars)", horizons)
        label = str(v["timestamp_label"])
        if label not in TIMESTAMP_LABELS:
            raise bad("timestamp_label", "must be start or end (what a bar's timestamp marks)", label)
        # the session times parse here, once; start_minute / end_minute read them
        parse_hhmm(v["session_start"])
        if v["session_end"] is not None:
            parse_hhmm(v["session_end"], "data.session_end")
        split = v["split"]
        return cls(
            source=source,
            path=v["path"],
            bar_minutes=bar,
            lookback_hours=float(lookback),
            horizon_minutes=[int(m) for m in minutes],
            max_seq_len=int(max_seq_len),
            horizons=[int(h) for h in horizons],
            session_tz=check_timezone(str(v["session_tz"])),
            session_start=v["session_start"],
            session_end=v["session_end"],
            timezone=check_timezone(str(v["timezone"]), "data.timezone"),
            timestamp_label=label,
            symbol=None if v["symbol"] is None else str(v["symbol"]),
            sort=bool(v["sort"]),
            vol_anchor=bool(v["vol_anchor"]),
            event_calendar=bool(v["event_calendar"]),
            cross_asset=bool(v["cross_asset"]),
            cache_dir=v["cache_dir"],
            split=SplitSchema(**{f.name: setting(split, f.name, SplitSchema) for f in dataclasses.fields(SplitSchema)}),
            synthetic=v["synthetic"],
        )

    @property
    def start_minute(self) -> int:
        """session_start as minutes after midnight (exchange time)."""
        from migt_train.data.sources.calendar import parse_hhmm

        return parse_hhmm(self.session_start)

    @property
    def end_minute(self) -> int | None:
        from migt_train.data.sources.calendar import parse_hhmm

        return None if self.session_end is None else parse_hhmm(self.session_end, "data.session_end")

    @property
    def cache_path(self) -> Path:
        """The feature and market cache directory (cache_dir, else $MIGT_CACHE_DIR, else ~/.cache/migt_train)."""
        from migt_train.data.sources.cache import cache_dir

        return cache_dir(self.cache_dir)


def setting(cfg: Mapping | None, key: str, schema: type = DataSchema) -> Any:
    """cfg[key], or the schema's default where the key is left out or null."""
    from migt_train.errors import raised_within

    try:
        value = None if cfg is None else cfg.get(key) if hasattr(cfg, "get") else getattr(cfg, key, None)
    except Exception as e:  # a ${migt.*} resolver's MigtError (e.g. a horizon not in whole bars), unwrapped
        err = raised_within(e)
        if err is None:
            raise
        raise err from None
    if value is not None:
        return value
    return getattr(schema(), key)
