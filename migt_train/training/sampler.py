"""One sampler decides batch order: a permutation seeded by (seed, epoch), so the order of any epoch
can be rebuilt on resume from (epoch, position) alone, and DDP ranks can take disjoint shards.
"""

from __future__ import annotations

from typing import Any, Iterator

import torch

from migt_train.runtime import current_dist


class EpochSampler:
    def __init__(
        self,
        rows: torch.Tensor,
        batch_size: int,
        seed: int,
        limit_batches: int | None = None,
        rank: int | None = None,
        world_size: int | None = None,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.rows = rows.detach().cpu().long()
        self.batch_size = int(batch_size)
        self.seed = int(seed)
        self.limit_batches = None if limit_batches is None else int(limit_batches)
        here = current_dist()
        self.rank = here.rank if rank is None else rank
        self.world_size = here.world_size if world_size is None else world_size
        self.epoch = 0
        self.position = 0  # batches of this epoch already handed out

    def __len__(self) -> int:
        per_rank = -(-len(self.rows) // self.world_size)
        n = -(-per_rank // self.batch_size)
        return n if self.limit_batches is None else min(n, self.limit_batches)

    def set_epoch(self, epoch: int, position: int = 0) -> None:
        self.epoch, self.position = int(epoch), int(position)

    def epoch_order(self) -> torch.Tensor:
        """This rank's rows for the current epoch, in order."""
        g = torch.Generator().manual_seed(self.seed + self.epoch)
        perm = torch.randperm(len(self.rows), generator=g)
        if self.world_size > 1:  # pad by wrapping so every rank gets the same number of batches
            total = -(-len(perm) // self.world_size) * self.world_size
            perm = torch.cat([perm, perm[: total - len(perm)]])[self.rank :: self.world_size]
        return self.rows[perm]

    def __iter__(self) -> Iterator[torch.Tensor]:
        order = self.epoch_order()
        for b in range(self.position, len(self)):
            self.position = b + 1
            yield order[b * self.batch_size : (b + 1) * self.batch_size]

    def state_dict(self) -> dict[str, Any]:
        return {"seed": self.seed, "epoch": self.epoch, "position": self.position}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.seed = int(state["seed"])
        self.set_epoch(state["epoch"], state["position"])
