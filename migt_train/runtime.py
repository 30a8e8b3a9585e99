"""Where and how the code runs: device, process group (torchrun), seeds, mixed precision.

Everything that depends on the process rather than on the experiment lives here, so the trainer,
inference, the profiler and the bench make the same choices. `Runtime` is the small object the
trainer takes: device, rank/world size and the autocast settings.
"""

from __future__ import annotations

import contextlib
import os
import random
from dataclasses import dataclass, field
from typing import ContextManager

import numpy as np
import torch
import torch.distributed as dist

from migt_train.errors import MigtError


def resolve_device(name: str | torch.device, key: str = "trainer.device") -> torch.device:
    """'auto' -> cuda when available, else cpu; asking for CUDA without it is a config error."""
    name = str(name)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise MigtError(f"config key '{key}': {name} requested but CUDA is not available")
    return torch.device(name)


@dataclass(frozen=True)
class DistEnv:
    """This process's place in the job: rank 0 of 1 without torchrun."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed(device: torch.device | None = None) -> DistEnv:
    """Join the process group torchrun describes (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR/PORT);
    a no-op returning rank 0 of 1 when WORLD_SIZE is unset. gloo on CPU, nccl on CUDA."""
    if "WORLD_SIZE" not in os.environ:
        return DistEnv()
    try:
        env = DistEnv(int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]), int(os.environ.get("LOCAL_RANK", 0)))
    except (KeyError, ValueError) as e:
        raise MigtError(f"torchrun environment: RANK/WORLD_SIZE/LOCAL_RANK must be integers ({e})") from None
    if env.world_size > 1 and not dist.is_initialized():
        cuda = device is not None and device.type == "cuda"
        if cuda:
            torch.cuda.set_device(env.local_rank)
        dist.init_process_group("nccl" if cuda else "gloo", rank=env.rank, world_size=env.world_size)
    return env


def current_dist() -> DistEnv:
    """The process group already joined (rank 0 of 1 when none)."""
    if dist.is_available() and dist.is_initialized():
        return DistEnv(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", 0)))
    return DistEnv()


def seed_everything(seed: int, rank: int = 0) -> None:
    """Seed Python, NumPy (which takes 32 bits) and torch; each rank gets its own stream (seed + rank)
    so dropout masks differ between ranks while rank 0 matches a single-process run."""
    seed = int(seed) + int(rank)
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


@dataclass(frozen=True)
class Precision:
    """Mixed precision: autocast acts on CUDA only; float16 needs loss scaling, bfloat16 does not
    (it has fp32's exponent range)."""

    device_type: str = "cpu"
    enabled: bool = False
    dtype: torch.dtype = torch.float16

    @classmethod
    def for_device(cls, device: torch.device, mixed_precision: bool, amp_dtype: str) -> "Precision":
        dtype = torch.bfloat16 if amp_dtype == "bfloat16" else torch.float16
        return cls(device.type, bool(mixed_precision) and device.type == "cuda", dtype)

    def autocast(self) -> ContextManager[None]:
        if not self.enabled:
            return contextlib.nullcontext()
        return torch.autocast(self.device_type, dtype=self.dtype)

    def grad_scaler(self) -> torch.amp.GradScaler:
        return torch.amp.GradScaler("cuda", enabled=self.enabled and self.dtype == torch.float16)


def set_matmul_precision(device: torch.device, precision: str = "highest") -> None:
    """float32 matmul precision on CUDA ('high' allows TF32); CPU results never change."""
    if device.type == "cuda":
        torch.set_float32_matmul_precision(precision)


@dataclass(frozen=True)
class Runtime:
    """Device, process group and precision of one training or inference process."""

    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    dist: DistEnv = field(default_factory=DistEnv)
    precision: Precision = field(default_factory=Precision)

    @classmethod
    def create(cls, device: str | torch.device = "auto", mixed_precision: bool = True, amp_dtype: str = "float16",
               key: str = "trainer.device") -> "Runtime":
        dev = resolve_device(device, key)
        if dev.type == "cpu":
            # process-wide malloc setting (see training/cpu_memory.py); idempotent
            from migt_train.training.cpu_memory import retain_freed_memory

            retain_freed_memory()
        return cls(dev, current_dist(), Precision.for_device(dev, mixed_precision, amp_dtype))

    @property
    def is_main(self) -> bool:
        return self.dist.is_main
