"""What an accumulated optimizer step adds up on the device: the global gradient norm and the running
training-loss sums. Both stay on the device (no host sync per micro-batch); they are read at log and
epoch ends only."""

from __future__ import annotations

import math
import time
from typing import Any

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


class EpochSums:
    """One epoch's running figures: the loss over the epoch and over the current log window, samples,
    skipped steps and seconds; started fresh or from an interrupted epoch's saved figures (`mid`)."""

    def __init__(self, device: torch.device, mid: dict[str, Any] | None = None, is_main: bool = True) -> None:
        self.device = device
        # the saved sums are global: rank 0 carries them on, the other ranks restart from zero
        carry = mid is not None and is_main
        self.total = LossSums(device, mid["loss_sum"], mid["finite_samples"]) if carry else LossSums(device)
        self.train_samples = mid["train_samples"] if carry else 0
        self.nonfinite = mid["nonfinite_steps"] if mid else 0
        self.seconds_before = mid["seconds"] if mid else 0.0
        self.t0 = time.perf_counter()
        self.new_window()

    def new_window(self) -> None:
        self.window, self.window_samples, self.window_t0 = LossSums(self.device), 0, time.perf_counter()

    def add(self, loss: torch.Tensor, n: int) -> torch.Tensor:
        """A micro-batch's mean loss over its n rows (an empty one, n 0, counts as finite); -> finite flag."""
        finite = torch.isfinite(loss) | (n == 0)
        contrib, fn = torch.where(finite, loss.detach().double() * n, 0.0), finite.double() * n
        self.total.add(contrib, fn)
        self.window.add(contrib, fn)
        self.train_samples += n
        self.window_samples += n
        return finite

    def seconds(self) -> float:
        return self.seconds_before + time.perf_counter() - self.t0

    def mid_epoch(self, epoch: int, position: int) -> dict[str, Any]:
        """What last.pt records of an interrupted epoch (global sums: a collective under DDP)."""
        sums = all_reduce(torch.stack([self.total.loss, self.total.n, torch.tensor(
            float(self.train_samples), dtype=torch.float64, device=self.device)])).cpu()
        return {"epoch": epoch, "position": position, "loss_sum": sums[0].clone(), "finite_samples": sums[1].clone(),
                "train_samples": int(sums[2]), "nonfinite_steps": self.nonfinite, "seconds": self.seconds()}

    def result(self) -> dict[str, Any]:
        """The epoch's training figures (history.json's train part; collectives under DDP)."""
        samples = int(all_reduce(torch.tensor(float(self.train_samples), dtype=torch.float64, device=self.device)))
        return {"train_loss": self.total.mean(), "train_samples": samples, "nonfinite_steps": self.nonfinite,
                "train_seconds": self.seconds()}
