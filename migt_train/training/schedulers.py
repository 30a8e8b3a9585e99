"""Learning-rate schedules driven by two hooks the trainer calls: step() after every optimizer step
and epoch_end() after every epoch. Each group's lr is a pure function of the counters, so
state_dict() is just the counters plus base lrs and resume is exact.
"""

from __future__ import annotations

import math
from typing import Any, Iterator, Mapping

from torch.optim import Optimizer

# lowest allowed value of each scheduler key (config checks; see config_errors)
LOWEST = {"warmup_steps": 0, "t_0": 1, "t_mult": 1, "eta_min": 0}


class Scheduler:
    """Base: constant lr. Subclasses override lr_factor/_lr; the hooks stay the same."""

    def __init__(self, optimizer: Optimizer) -> None:
        self.optimizer = optimizer
        self.base_lrs = [float(g.setdefault("initial_lr", g["lr"])) for g in optimizer.param_groups]
        self.step_count = 0  # optimizer steps taken
        self.epoch_count = 0  # epoch_end() calls
        self._apply()

    @staticmethod
    def config_errors(values: Mapping[str, Any]) -> Iterator[tuple[str, str, Any]]:
        """Broken value rules of a scheduler config node, as (key, rule, value)."""
        for key, low in LOWEST.items():
            if values.get(key) is not None and values[key] < low:
                yield key, f"must be >= {low}", values[key]

    def _lrs(self) -> list[float]:
        return list(self.base_lrs)

    def _apply(self) -> None:
        for g, lr in zip(self.optimizer.param_groups, self._lrs()):
            g["lr"] = lr

    def step(self) -> None:
        """Call after each optimizer step that updated the parameters."""
        self.step_count += 1
        self._apply()

    def epoch_end(self) -> None:
        """Call after each completed epoch."""
        self.epoch_count += 1
        self._apply()

    def get_last_lr(self) -> list[float]:
        return [float(g["lr"]) for g in self.optimizer.param_groups]

    def state_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "optimizer"}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._apply()


class ConstantScheduler(Scheduler):
    """lr stays at the optimizer's lr."""


class LinearWarmupScheduler(Scheduler):
    """Optimizer step k (1-based) uses base_lr * min(k, warmup_steps) / warmup_steps; then constant."""

    def __init__(self, optimizer: Optimizer, warmup_steps: int = 1000) -> None:
        if warmup_steps < 0:
            raise ValueError(f"warmup_steps must be >= 0, got {warmup_steps}")
        self.warmup_steps = int(warmup_steps)
        super().__init__(optimizer)

    @property
    def in_warmup(self) -> bool:
        return self.step_count < self.warmup_steps

    def warmup_factor(self) -> float:
        if not self.in_warmup:
            return 1.0
        return (self.step_count + 1) / self.warmup_steps

    def _lrs(self) -> list[float]:
        f = self.warmup_factor()
        return [b * f for b in self.base_lrs]


class WarmupCosineScheduler(LinearWarmupScheduler):
    """Linear warmup per optimizer step, then cosine annealing with warm restarts per epoch.

    Cosine epochs e count the epoch_end() calls made once warmup is over (the epoch in which warmup
    finishes runs at base lr and is cosine epoch 0). With T_i = t_0 * t_mult**i the cycle lengths,
    T_cur the epochs into the current cycle: lr = eta_min + (base - eta_min) * (1 + cos(pi T_cur/T_i)) / 2.
    """

    def __init__(
        self,
        optimizer: Optimizer,
        warmup_steps: int = 1000,
        t_0: int = 10,
        t_mult: int = 2,
        eta_min: float = 1e-6,
    ) -> None:
        if t_0 < 1 or t_mult < 1:
            raise ValueError(f"t_0 and t_mult must be >= 1, got t_0={t_0}, t_mult={t_mult}")
        self.t_0, self.t_mult, self.eta_min = int(t_0), int(t_mult), float(eta_min)
        self.cosine_epoch = 0
        super().__init__(optimizer, warmup_steps)

    def epoch_end(self) -> None:
        if not self.in_warmup:
            self.cosine_epoch += 1
        super().epoch_end()

    def cycle_position(self) -> tuple[int, int]:
        """(T_cur, T_i) for the current cosine epoch; integer arithmetic, no float log."""
        t_cur, t_i = self.cosine_epoch, self.t_0
        while t_cur >= t_i:
            t_cur -= t_i
            t_i *= self.t_mult
        return t_cur, t_i

    def _lrs(self) -> list[float]:
        if self.in_warmup:
            return super()._lrs()
        t_cur, t_i = self.cycle_position()
        c = (1 + math.cos(math.pi * t_cur / t_i)) / 2
        return [self.eta_min + (b - self.eta_min) * c for b in self.base_lrs]
