"""One sampler decides batch order: a permutation seeded by (seed, epoch), so the order of any epoch
can be rebuilt on resume from (epoch, position) alone.

Under DDP `batch_size` is the *global* batch: batch b of the epoch is the same set of rows in every
process count, and rank r trains on its strided part (rows r, r + W, ...). Each row is seen once
per epoch across ranks, the group's gradient equals a single process's on the same rows, and the
position (in global batches) means the same thing when a run resumes on another world size.
"""

from __future__ import annotations

from typing import Any, Iterator

import torch

from migt_train.training.runtime import current_dist


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
        n = -(-len(self.rows) // self.batch_size)
        return n if self.limit_batches is None else min(n, self.limit_batches)

    def global_size(self, b: int) -> int:
        """Rows in global batch b (all ranks together)."""
        return max(0, min(self.batch_size, len(self.rows) - b * self.batch_size))

    def set_epoch(self, epoch: int, position: int = 0) -> None:
        self.epoch, self.position = int(epoch), int(position)

    def epoch_order(self) -> torch.Tensor:
        """All rows of the current epoch, in order (every rank computes the same)."""
        g = torch.Generator().manual_seed(self.seed + self.epoch)
        return self.rows[torch.randperm(len(self.rows), generator=g)]

    def __iter__(self) -> Iterator[torch.Tensor]:
        """This rank's rows of each remaining global batch (empty when the epoch's last, short batch
        has fewer rows than there are ranks)."""
        order = self.epoch_order()
        for b in range(self.position, len(self)):
            self.position = b + 1
            yield order[b * self.batch_size : (b + 1) * self.batch_size][self.rank :: self.world_size]

    def state_dict(self) -> dict[str, Any]:
        return {"seed": self.seed, "epoch": self.epoch, "position": self.position}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.seed = int(state["seed"])
        self.set_epoch(state["epoch"], state["position"])
