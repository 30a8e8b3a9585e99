from __future__ import annotations

import math
from typing import Any


class EarlyStopping:
    """Stop after `patience` epochs in which the val loss fell by no more than min_delta below every earlier
    epoch's."""

    def __init__(self, patience: int = 10, min_delta: float = 1e-5) -> None:
        self.patience = int(patience)
        self.min_delta = float(min_delta)
        self.best = math.inf
        self.best_epoch = 0
        self.bad_epochs = 0

    def update(self, value: float, epoch: int) -> bool:
        """Record an epoch's val loss; True when it is a new best."""
        improved = math.isfinite(value) and value < self.best - self.min_delta
        if improved:
            self.best, self.best_epoch, self.bad_epochs = value, epoch, 0
        else:
            self.bad_epochs += 1
        return improved

    @property
    def should_stop(self) -> bool:
        return self.patience > 0 and self.bad_epochs >= self.patience

    def state_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        # only the counters this class has: checkpoints of earlier versions hold more (`lowest`)
        self.__dict__.update({k: v for k, v in state.items() if k in vars(self)})
