"""The `evaluation.*` config keys, free of the heavy evaluation imports (pandas, matplotlib), so the
config schema can use them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional

# Bars: 1 h of 5-minute bars, short enough to follow the intraday volatility pattern; the best of
# 3..276 bars on the default synthetic market.
DEFAULT_EWMA_HALFLIFE = 12.0

# metrics.json keys that summarise the fit (copied from the trainer's result)
FIT_SUMMARY_KEYS = ("best_epoch", "best_val_loss", "epochs_run", "stopped_early", "n_parameters", "world_size")


@dataclass
class EvaluationConfig:
    """The `evaluation.*` config keys and their defaults; also the config schema."""

    conformal: bool = False
    batch_size: int = 512
    ewma_halflife: float = DEFAULT_EWMA_HALFLIFE
    device: str = "auto"
    instruments: Optional[List[str]] = None  # a pooled run: the instruments evaluate scores (null: all)
