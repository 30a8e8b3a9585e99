"""Exponential moving average of the weights (`trainer.ema_decay`): validation, best/top-k
checkpoints and the test evaluation use the average; the optimizer keeps stepping the raw weights."""

from __future__ import annotations

import contextlib
from typing import Iterator

import torch


class WeightAverage:
    def __init__(self, params: list[torch.Tensor], decay: float) -> None:
        self.params = params
        self.decay = float(decay)
        self.average = [p.detach().clone() for p in params]
        self.updates = 0

    @torch.no_grad()
    def update(self) -> None:
        # the average's horizon grows from ~10 updates to 1 / (1 - decay), so early averages are
        # not dominated by the initial weights
        self.updates += 1
        decay = min(self.decay, (1 + self.updates) / (10 + self.updates))
        torch._foreach_lerp_(self.average, self.params, 1.0 - decay)

    @contextlib.contextmanager
    def swapped_in(self) -> Iterator[None]:
        """The parameters hold the averaged weights inside the block, the raw ones again after it."""
        with torch.no_grad():
            raw = [p.detach().clone() for p in self.params]
            torch._foreach_copy_(self.params, self.average)
        try:
            yield
        finally:
            with torch.no_grad():
                torch._foreach_copy_(self.params, raw)

    @torch.no_grad()
    def load(self, averaged: list[torch.Tensor], updates: int) -> None:
        for a, v in zip(self.average, averaged):
            a.copy_(v)
        self.updates = int(updates)
