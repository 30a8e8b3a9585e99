"""Small seeded markets and data configs for the data-layer tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
from omegaconf import OmegaConf

from migt_train.data.synthetic import SyntheticConfig, generate

OHLCV = ["timestamp", "open", "high", "low", "close", "volume"]


def small_bars(n_days: int = 4, bar_minutes: int = 5, seed: int = 0) -> pd.DataFrame:
    """Valid OHLCV bars (timestamp naive UTC) on the Globex calendar."""
    bars = generate(SyntheticConfig(seed=seed, n_days=n_days), bar_minutes, "America/New_York", 18 * 60)
    return bars[OHLCV].copy()


def data_cfg(**overrides: Any):
    """The data config contract with its defaults; nested keys as dicts, e.g. synthetic={"n_days": 12}."""
    base = {
        "source": "synthetic",
        "path": None,
        "bar_minutes": 5,
        "lookback_hours": 24,
        "max_seq_len": 288,
        "horizons": [3, 6, 12, 24, 48],
        "session_tz": "America/New_York",
        "session_start": "18:00",
        "sort": False,
        "cache_dir": None,
        "split": {"by": "fraction", "val_fraction": 0.15, "test_fraction": 0.15, "val_start": None, "test_start": None},
        "synthetic": {"n_days": 12},
    }
    return OmegaConf.merge(OmegaConf.create(base), OmegaConf.create(overrides))


def write_bars(bars: pd.DataFrame, path: Path) -> Path:
    if path.suffix == ".parquet":
        bars.to_parquet(path, index=False)
    else:
        bars.to_csv(path, index=False)
    return path
