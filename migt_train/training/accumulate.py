"""What an accumulated optimizer step adds up on the device: the global gradient norm and the running
training-loss sums. Both stay on the device (no host sync per micro-batch); they are read at log and
epoch ends only."""

from __future__ import annotations

import math

import torch

from migt_train.training.runtime import all_reduce


def total_norm(params: list[torch.Tensor], max_norm: float | None, device: torch.device) -> torch.Tensor:
    """Global grad norm (clipping to max_norm when set); stays on device, no sync."""
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return torch.zeros((), device=device)
    if max_norm:
        return torch.nn.utils.clip_grad_norm_(params, max_norm)
    return torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g.float()) for g in grads]))


class LossSums:
    """On-device running sums of the training loss: finite-loss samples only, read at log/epoch ends."""

    def __init__(self, device: torch.device, loss: torch.Tensor | None = None, n: torch.Tensor | None = None) -> None:
        zero = lambda: torch.zeros((), dtype=torch.float64, device=device)  # noqa: E731
        self.loss = zero() if loss is None else loss.to(device)
        self.n = zero() if n is None else n.to(device)

    def add(self, contrib: torch.Tensor, n: torch.Tensor) -> None:
        self.loss += contrib
        self.n += n

    def mean(self) -> float:
        """Mean over all ranks (a collective under DDP: every rank calls it at the same point)."""
        s, c = all_reduce(torch.stack([self.loss, self.n])).tolist()
        return s / c if c else math.nan
