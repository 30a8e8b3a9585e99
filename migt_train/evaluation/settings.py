"""The `evaluation.*` config keys, free of the heavy evaluation imports (pandas, matplotlib), so the
config schema can use them."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Optional

from migt_train.errors import MigtError

# Bars: 1 h of 5-minute bars, short enough to follow the intraday volatility pattern; the best of
# 3..276 bars on the default synthetic market.
DEFAULT_EWMA_HALFLIFE = 12.0

# metrics.json keys that summarise the fit (copied from the trainer's result)
FIT_SUMMARY_KEYS = ("best_epoch", "best_val_loss", "epochs_run", "stopped_early", "n_parameters", "world_size")


@dataclass
class EvaluationConfig:
    """The `evaluation.*` config keys and their defaults; also the config schema."""

    conformal: bool = False
    seasonal_blend: bool = False
    batch_size: int = 512
    ewma_halflife: float = DEFAULT_EWMA_HALFLIFE
    device: str = "auto"
    price_tick: Optional[str] = None  # auto, a tick size, or null (off): evaluation/price_grid.py


def parse_price_tick(value: Any) -> str | float | None:
    """evaluation.price_tick -> None (off), "auto" or a positive tick size; one MigtError naming the key."""
    if value is None or value == "auto":
        return value
    try:
        tick = math.nan if isinstance(value, bool) else float(value)
    except (TypeError, ValueError):
        tick = math.nan
    if not (math.isfinite(tick) and tick > 0):
        raise MigtError(f"config key 'evaluation.price_tick': must be auto, null or a positive tick size (got {value!r})")
    return tick
