"""Time split of one training step (data, forward, backward, optimizer), for `python -m migt_train.bench`."""

from __future__ import annotations

import copy
import time
from typing import Callable, Iterable

import torch
from torch import nn

from migt_train.data.market import MarketData
from migt_train.training.runtime import Runtime
from migt_train.training.losses import CombinedQuantileLoss
from migt_train.training.step import gather, loss_step


def step_time_split(
    model: nn.Module,
    data: MarketData,
    batch_size: int,
    levels: list[float],
    steps: int = 10,
    warmup: int = 2,
    device: str | torch.device = "auto",
    mixed_precision: bool = True,
    amp_dtype: str = "float16",
    optimizer: Callable[[Iterable[nn.Parameter]], torch.optim.Optimizer] | None = None,
    seed: int = 0,
) -> dict[str, float]:
    """Mean seconds per step of each phase over `steps` steps after `warmup`, on a copy of the model.

    Phases are separated by device synchronisation, so the split is exact but the total is a little
    slower than the trainer's overlapped loop. Keys: data, forward, backward, optimizer, total,
    samples_per_second.
    """
    runtime = Runtime.create(device, mixed_precision, amp_dtype)  # the trainer's device and precision
    dev = runtime.device
    model = copy.deepcopy(model).to(dev).train()
    loss_fn = CombinedQuantileLoss(levels).to(dev)
    opt = (optimizer or (lambda p: torch.optim.AdamW(p, lr=1e-4)))([p for p in model.parameters() if p.requires_grad])
    scaler = runtime.precision.grad_scaler()
    data = data.to(dev)  # resident on a GPU, as in the trainer
    rows_all = data.splits["train"]
    g = torch.Generator().manual_seed(seed)

    def sync() -> None:
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)

    totals = dict.fromkeys(("data", "forward", "backward", "optimizer"), 0.0)
    for i in range(warmup + steps):
        sync()
        t0 = time.perf_counter()
        b = gather(data, rows_all[torch.randint(len(rows_all), (batch_size,), generator=g)], dev)
        sync()
        t1 = time.perf_counter()
        _, loss = loss_step(model, loss_fn, b, runtime.precision)
        sync()
        t2 = time.perf_counter()
        scaler.scale(loss).backward()
        sync()
        t3 = time.perf_counter()
        scaler.unscale_(opt)
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        scaler.step(opt)
        scaler.update()
        opt.zero_grad(set_to_none=True)
        sync()
        t4 = time.perf_counter()
        if i >= warmup:
            for k, v in zip(totals, (t1 - t0, t2 - t1, t3 - t2, t4 - t3)):
                totals[k] += v
    out = {k: v / steps for k, v in totals.items()}
    out["total"] = sum(out.values())
    out["samples_per_second"] = batch_size / out["total"]
    return out
