"""The single main-process point: DDP later means only rank 0 writes files and talks to loggers."""

from __future__ import annotations

import torch
import torch.distributed as dist

from migt_train.errors import MigtError


def is_initialized() -> bool:
    return dist.is_available() and dist.is_initialized()


def get_rank() -> int:
    return dist.get_rank() if is_initialized() else 0


def get_world_size() -> int:
    return dist.get_world_size() if is_initialized() else 1


def is_main_process() -> bool:
    return get_rank() == 0


def resolve_device(name: str | torch.device, key: str = "trainer.device") -> torch.device:
    """'auto' -> cuda when available, else cpu; asking for CUDA without it is a config error."""
    name = str(name)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise MigtError(f"config key '{key}': {name} requested but CUDA is not available")
    return torch.device(name)
