"""Where and how the code runs: device, process group (torchrun), seeds, mixed precision.

Everything that depends on the process rather than on the experiment lives here, so the trainer,
inference, the profiler and the bench make the same choices. `Runtime` is the small object the
trainer takes: device, rank/world size and the autocast settings.
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
from dataclasses import dataclass, field
from datetime import timedelta
from typing import ContextManager

import numpy as np
import torch
import torch.distributed as dist

from migt_train.errors import MigtError

log = logging.getLogger(__name__)
FINISH_WAIT_S = 60  # how long a finishing rank waits for the others before leaving the group


def resolve_device(name: str | torch.device, key: str = "trainer.device") -> torch.device:
    """'auto' -> cuda when available, else cpu; asking for CUDA without it is a config error."""
    name = str(name)
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise MigtError(f"config key '{key}': {name} requested but CUDA is not available")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda":  # one GPU per process: torchrun's LOCAL_RANK picks it (0 without torchrun)
        return torch.device("cuda", current_dist().local_rank)
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
    a no-op returning rank 0 of 1 when WORLD_SIZE is unset. gloo carries CPU tensors and, where CUDA
    is present, nccl carries CUDA tensors (one group with both backends), so the group can be joined
    at the entry point before the config has chosen a device. Idempotent."""
    if "WORLD_SIZE" not in os.environ:
        return DistEnv()
    try:
        env = DistEnv(int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]), int(os.environ.get("LOCAL_RANK", 0)))
    except (KeyError, ValueError) as e:
        raise MigtError(f"torchrun environment: RANK/WORLD_SIZE/LOCAL_RANK must be integers ({e})") from None
    if env.world_size > 1 and not dist.is_initialized():
        cuda = torch.cuda.is_available() and (device is None or device.type == "cuda")
        if cuda:
            torch.cuda.set_device(env.local_rank)
        dist.init_process_group("cpu:gloo,cuda:nccl" if cuda else "gloo", rank=env.rank, world_size=env.world_size)
    return env


def share_run_id() -> None:
    """Make every rank use rank 0's run id (the `${migt.run_id:}` in hydra.run.dir), so a torchrun job
    writes one run directory. Called by run.py after joining the group and before Hydra resolves
    its output dir; each process draws its own timestamp + random suffix, so agreeing needs a
    broadcast (TORCHELASTIC_RUN_ID is the constant "none" under a plain `torchrun`)."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return
    from migt_train.config import resolvers

    box = [resolvers.RUN_ID]
    dist.broadcast_object_list(box, src=0)
    resolvers.RUN_ID = str(box[0])


def finish_distributed() -> None:
    """Leave the process group (at the end of run.py) so the process exits without a warning. The ranks
    first meet (waiting at most FINISH_WAIT_S for a rank that has died): a rank that tears down its gloo
    connections while a peer still uses them can make that peer abort (SIGABRT) at exit."""
    if dist.is_available() and dist.is_initialized():
        try:
            if dist.get_backend() == "gloo":  # monitored_barrier exists for gloo only
                dist.monitored_barrier(timeout=timedelta(seconds=FINISH_WAIT_S))
            else:  # NCCL: the process group's own timeout bounds the wait
                dist.barrier()
        except RuntimeError as e:  # a rank that died or never got here: leave anyway
            log.warning("leaving the process group without every rank (%s)", str(e).splitlines()[0][:200])
        dist.destroy_process_group()


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


def _native_bf16() -> bool:
    """bfloat16 in hardware (compute capability 8.0+), not emulated."""
    return torch.cuda.is_available() and torch.cuda.get_device_capability() >= (8, 0)


@dataclass(frozen=True)
class Precision:
    """Mixed precision: autocast acts on CUDA only; float16 needs loss scaling, bfloat16 does not
    (it has fp32's exponent range)."""

    device_type: str = "cpu"
    enabled: bool = False
    dtype: torch.dtype = torch.float16

    @classmethod
    def for_device(cls, device: torch.device, mixed_precision: bool, amp_dtype: str) -> "Precision":
        """amp_dtype 'auto' = bfloat16 where the GPU supports it (Ampere and later: no loss scaling,
        no overflow), else float16."""
        if amp_dtype == "auto":
            amp_dtype = "bfloat16" if device.type == "cuda" and _native_bf16() else "float16"
        dtype = torch.bfloat16 if amp_dtype == "bfloat16" else torch.float16
        return cls(device.type, bool(mixed_precision) and device.type == "cuda", dtype)

    def autocast(self) -> ContextManager[None]:
        if not self.enabled:
            return contextlib.nullcontext()
        return torch.autocast(self.device_type, dtype=self.dtype)

    def grad_scaler(self) -> torch.amp.GradScaler:
        return torch.amp.GradScaler("cuda", enabled=self.enabled and self.dtype == torch.float16)


def set_matmul_precision(device: torch.device, precision: str = "high") -> None:
    """float32 matmul precision on CUDA: 'high' lets the float32 matmuls that autocast leaves (and
    every matmul of a run without AMP) use TF32 tensor cores; CPU results never change."""
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
        set_matmul_precision(dev)
        return cls(dev, current_dist(), Precision.for_device(dev, mixed_precision, amp_dtype))

    @property
    def is_main(self) -> bool:
        return self.dist.is_main


# -- collectives: every rank calls them at the same point; all are no-ops in a single process ---------

def _world() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def all_reduce(t: torch.Tensor, op: str = "sum") -> torch.Tensor:
    """Reduce `t` over ranks in place (sum | min | max) and return it; stays on its device (no sync)."""
    if _world() > 1:
        dist.all_reduce(t, {"sum": dist.ReduceOp.SUM, "min": dist.ReduceOp.MIN, "max": dist.ReduceOp.MAX}[op])
    return t


def all_gather_rows(t: torch.Tensor) -> torch.Tensor:
    """Concatenate every rank's `t` (same trailing shape, any number of rows) in rank order."""
    world = _world()
    if world == 1:
        return t
    n = torch.tensor([t.shape[0]], device=t.device)
    sizes = [torch.zeros_like(n) for _ in range(world)]
    dist.all_gather(sizes, n)
    counts = [int(s) for s in sizes]
    padded = torch.zeros((max(counts), *t.shape[1:]), dtype=t.dtype, device=t.device)
    padded[: t.shape[0]] = t
    parts = [torch.empty_like(padded) for _ in range(world)]
    dist.all_gather(parts, padded)
    return torch.cat([p[:c] for p, c in zip(parts, counts)])


def all_gather_objects(obj: object) -> list[object]:
    """Every rank's `obj` (picklable), in rank order, on every rank."""
    world = _world()
    if world == 1:
        return [obj]
    out: list[object] = [None] * world
    dist.all_gather_object(out, obj)
    return out


def barrier() -> None:
    if _world() > 1:
        dist.barrier()


def shard(rows: torch.Tensor, env: DistEnv) -> torch.Tensor:
    """This rank's contiguous part of `rows` (sizes differ by at most one), so concatenating the
    parts in rank order gives `rows` back: validation is sharded, its metrics computed on the whole."""
    return rows.tensor_split(env.world_size)[env.rank] if env.world_size > 1 else rows


def wrap_ddp(model: torch.nn.Module, runtime: "Runtime") -> torch.nn.Module:
    """DistributedDataParallel around `model` under torchrun (the model itself elsewhere). The raw model
    stays the owner of buffers and state (set_scaling, target_mean, state_dict keys without
    `module.`). Buffers are not re-broadcast every forward: they are the training split's scaling
    statistics, equal on every rank. Construction broadcasts rank 0's parameters."""
    if runtime.dist.world_size == 1:
        return model
    import inspect

    from torch.nn.parallel import DistributedDataParallel

    ids = [runtime.device.index] if runtime.device.type == "cuda" else None
    new = "forward_sync_buffers" in inspect.signature(DistributedDataParallel).parameters  # torch >= 2.13
    no_buffer_sync = {"forward_sync_buffers": False} if new else {"broadcast_buffers": False}
    # gradient_as_bucket_view: grads live in the all-reduce buckets (no copy, less memory)
    return DistributedDataParallel(model, device_ids=ids, gradient_as_bucket_view=True, **no_buffer_sync)
