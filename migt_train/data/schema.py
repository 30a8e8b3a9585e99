"""The `data.*` config keys, defined once: their types and defaults (DataSchema), their value rules
(`DataSchema.from_config`, one MigtError naming the first bad key) and the values derived from them.
conf/data/*.yaml sets the values of a run (tests/test_config.py checks that conf/data/synthetic.yaml
states exactly these defaults); migt_train.config.schema registers these dataclasses as `schema/data` in
Hydra's ConfigStore and merges the composed group onto it (types, unknown keys); data.build reads the
config through `DataSchema.from_config`, so a left-out or null key takes its default from here."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, List, Mapping, Optional

TIMESTAMP_LABELS = ("start", "end")


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
    path: Optional[str] = None  # the bars file of data=ohlcv (parquet, CSV, DBN)
    bar_minutes: int = 5
    lookback_hours: float = 24
    max_seq_len: int = 288
    horizons: List[int] = field(default_factory=lambda: [3, 6, 12, 24, 48])  # in bars
    session_tz: str = "America/New_York"  # the exchange's session clock
    session_start: str = "18:00"
    session_end: Optional[str] = None  # HH:MM; null keeps every bar of the file
    timezone: str = "UTC"  # zone of a file's naive timestamps
    timestamp_label: str = "start"  # start | end: what a bar's timestamp marks
    symbol: Optional[str] = None  # one contract of a multi-contract file; null = front-contract series
    sort: bool = False
    vol_anchor: bool = False  # the causal GARCH-t / time-of-day std per horizon (volatility/anchor.py)
    event_calendar: bool = False  # the scheduled-release features (volatility/events.py)
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
        if not positive_int(v["max_seq_len"]):
            raise bad("max_seq_len", "must be a positive integer", v["max_seq_len"])
        lookback = v["lookback_hours"]
        if isinstance(lookback, bool) or not isinstance(lookback, (int, float)) or lookback <= 0:
            raise bad("lookback_hours", "must be a positive number", lookback)
        horizons = list(v["horizons"])
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
            bar_minutes=int(v["bar_minutes"]),
            lookback_hours=float(lookback),
            max_seq_len=int(v["max_seq_len"]),
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
    value = None if cfg is None else cfg.get(key) if hasattr(cfg, "get") else getattr(cfg, key, None)
    if value is not None:
        return value
    return getattr(schema(), key)
