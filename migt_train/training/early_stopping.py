from __future__ import annotations

import math
from typing import Any


class EarlyStopping:
    """Stop after `patience` epochs in which the val loss fell by no more than min_delta below every earlier
    epoch's. The best epoch is ranked by the candidate loss the caller passes (the trainer's initial guard may
    turn an epoch down as best while its true val loss still fell: training is then still progressing, so the
    patience restarts)."""

    def __init__(self, patience: int = 10, min_delta: float = 1e-5) -> None:
        self.patience = int(patience)
        self.min_delta = float(min_delta)
        self.best = math.inf
        self.best_epoch = 0
        self.bad_epochs = 0
        self.lowest = math.inf  # the lowest true val loss so far

    def update(self, value: float, epoch: int, raw: float | None = None) -> bool:
        """Record an epoch's candidate val loss (`raw`: its true val loss when that differs); True when it is
        a new best."""
        raw = value if raw is None else raw
        improved = math.isfinite(value) and value < self.best - self.min_delta
        if improved:
            self.best, self.best_epoch = value, epoch
        if improved or (math.isfinite(raw) and raw < self.lowest - self.min_delta):
            self.bad_epochs = 0
        else:
            self.bad_epochs += 1
        if math.isfinite(raw):
            self.lowest = min(self.lowest, raw)
        return improved

    @property
    def should_stop(self) -> bool:
        return self.patience > 0 and self.bad_epochs >= self.patience

    def state_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.__dict__.update({"lowest": state.get("best", math.inf), **state})  # a checkpoint from before `lowest`
