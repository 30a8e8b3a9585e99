"""The `data.*` config keys: their types and defaults in one place. conf/data/*.yaml sets the user's
values; migt_train.config.schema registers these as `schema/data` in Hydra's ConfigStore and merges the
composed group onto it; data.build takes a left-out key's default from here."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, List, Mapping, Optional


@dataclass
class SplitSchema:
    by: str = "fraction"  # fraction | date | all (scoring another file; not for training)
    val_fraction: float = 0.15
    test_fraction: float = 0.15
    val_start: Optional[str] = None
    test_start: Optional[str] = None


@dataclass
class DataSchema:
    source: str = "synthetic"
    path: Optional[str] = None
    bar_minutes: int = 5
    lookback_hours: float = 24
    max_seq_len: int = 288
    horizons: List[int] = field(default_factory=lambda: [3, 6, 12, 24, 48])
    session_tz: str = "America/New_York"
    session_start: str = "18:00"
    session_end: Optional[str] = None  # HH:MM; null keeps every bar of the file
    timezone: str = "UTC"  # zone of a file's naive timestamps
    timestamp_label: str = "start"  # start | end: what a bar's timestamp marks
    symbol: Optional[str] = None  # one contract of a multi-contract file; null = front-contract series
    sort: bool = False
    cache_dir: Optional[str] = None
    vol_anchor: bool = False  # the causal GARCH-t / time-of-day std per horizon (volatility/anchor.py)
    vol_anchor_leverage: bool = False  # the anchor's GARCH with a leverage term (GJR): falls raise volatility more
    event_calendar: bool = False  # the scheduled-release features (volatility/events.py)
    split: SplitSchema = field(default_factory=SplitSchema)
    synthetic: Optional[Any] = None  # checked against data.synthetic.SyntheticConfig


def setting(cfg: Mapping | None, key: str, schema: type = DataSchema) -> Any:
    """cfg[key], or the schema's default where the key is left out or null."""
    value = None if cfg is None else cfg.get(key) if hasattr(cfg, "get") else getattr(cfg, key, None)
    if value is not None:
        return value
    return getattr(schema(), key)
