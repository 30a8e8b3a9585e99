"""The train state: what a checkpoint holds, how it is restored (and what makes a checkpoint
incompatible), and which files are written after an epoch (top-k, best.pt, then last.pt).

Checkpoint `model` is always the state_dict to predict with: the weight average where there is one
(what validation scored), with the raw weights the optimizer continues from in `train_model`.

RNG under DDP: `rng` is rank 0's state (what a single process resumes with), `rng_ranks` every
rank's, gathered to each rank (state_dict() is a collective: all ranks call it). On resume rank r
takes `rng_ranks[r]`; a rank the checkpoint has no state for (resuming on more processes than it
was written on) is seeded afresh from (seed + global_step, rank); states of ranks beyond the new
world size are dropped. Model, optimizer and sampler state are the same on every rank."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch
from omegaconf import DictConfig, ListConfig, OmegaConf
from torch import nn

from migt_train.errors import MigtError
from migt_train.training.runtime import all_gather_objects, seed_everything
from migt_train.utils.io import save_torch
from migt_train.training.checkpoint import FORMAT_VERSION, TopK, capture_rng, load_checkpoint, restore_rng
from migt_train.training.early_stopping import EarlyStopping
from migt_train.training.ema import WeightAverage
from migt_train.training.sampler import EpochSampler

log = logging.getLogger(__name__)


def json_plain(obj: Any) -> Any:
    """Plain containers only, so checkpoints load with weights_only=True."""
    if isinstance(obj, (DictConfig, ListConfig)):
        obj = OmegaConf.to_container(obj, resolve=True)
    return json.loads(json.dumps(obj, default=str))


@dataclass
class Progress:
    """Counters that advance during training and travel in every checkpoint."""

    epoch: int = 0  # completed epochs
    global_step: int = 0  # optimizer-step boundaries, skipped ones included
    history: list[dict[str, Any]] = field(default_factory=list)
    nonfinite_total: int = 0
    nonfinite_consecutive: int = 0
    # set while an interrupted epoch is saved: sampler position, running sums, seconds
    mid_epoch: dict[str, Any] | None = None

    def state_dict(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "global_step": self.global_step, "history": self.history,
                "mid_epoch": self.mid_epoch,
                "nonfinite": {"total": self.nonfinite_total, "consecutive": self.nonfinite_consecutive}}

    def load_state_dict(self, ckpt: Mapping[str, Any]) -> None:
        self.epoch = int(ckpt["epoch"])
        self.global_step = int(ckpt["global_step"])
        self.history = list(ckpt["history"])
        self.nonfinite_total = int(ckpt["nonfinite"]["total"])
        self.nonfinite_consecutive = int(ckpt["nonfinite"]["consecutive"])
        self.mid_epoch = ckpt["mid_epoch"]


@dataclass
class TrainState:
    """Everything a checkpoint holds, from parts passed in explicitly: gathered (state_dict) and restored
    (restore) in one place.

    The stateful parts have state_dict/load_state_dict; `identity` holds the facts a resumed run must
    share (feature_names, horizon_names, levels, instruments: a pooled run's, [] for one) and what is recorded for readers (config, trainer, seed).
    """

    model: nn.Module
    param_names: list[str]  # the trainable parameters, in the order of the weight average's tensors
    ema: WeightAverage | None
    optimizer: torch.optim.Optimizer
    scheduler: Any
    scaler: torch.amp.GradScaler
    early: EarlyStopping
    progress: Progress
    sampler: EpochSampler
    topk: TopK
    identity: dict[str, Any]
    seed: int
    rank: int

    def state_dict(self) -> dict[str, Any]:
        """The checkpoint's contents (a collective under DDP: every rank's RNG state is gathered)."""
        m = self.model
        weights = m.state_dict()
        averaged = dict(zip(self.param_names, self.ema.average)) if self.ema else None
        ranks = all_gather_objects(capture_rng())
        return {
            "format_version": FORMAT_VERSION,
            "model": {**weights, **averaged} if averaged else weights,
            "train_model": weights if self.ema else None,
            "ema_updates": self.ema.updates if self.ema else 0,
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict() if self.scaler.is_enabled() else None,
            "early_stopping": self.early.state_dict(),
            **self.progress.state_dict(),
            "rng": ranks[0],
            "rng_ranks": ranks,
            "sampler": self.sampler.state_dict(),
            "topk": self.topk.state_dict(),
            **self.identity,
            "input_scaling": {"mean": m.input_mean.detach().cpu(), "std": m.input_std.detach().cpu()},
            "target_scaling": {"mean": m.target_mean.detach().cpu(), "std": m.target_std.detach().cpu()},
        }

    def _restore_rng(self, ckpt: Mapping[str, Any]) -> None:
        saved = ckpt.get("rng_ranks") or [ckpt["rng"]]
        if self.rank < len(saved):
            restore_rng(saved[self.rank])
        else:
            seed_everything(self.seed + int(ckpt["global_step"]), self.rank)

    def restore(self, path: Path) -> None:
        """Load every part from the checkpoint at `path`; MigtError when it belongs to another run setup."""
        ckpt = load_checkpoint(path)
        for key in ("levels", "feature_names", "horizon_names", "instruments"):
            # checkpoints from before pooled runs hold one instrument
            theirs, mine = (ckpt.get(key, []) if key == "instruments" else ckpt[key]), self.identity[key]
            same = np.allclose(theirs, mine) if key == "levels" and len(theirs) == len(mine) else theirs == mine
            if not same:
                raise MigtError(f"{path}: incompatible checkpoint ({key} {theirs} != this run's {mine})")
        try:
            ema_in_ckpt = ckpt.get("train_model") is not None
            if ema_in_ckpt != bool(self.ema):
                raise ValueError(f"trainer.ema_decay is {self.identity['trainer'].get('ema_decay')} but the checkpoint "
                                 f"was written {'with' if ema_in_ckpt else 'without'} weight averaging")
            self.model.load_state_dict(ckpt["train_model"] if self.ema else ckpt["model"])
            if self.ema:
                self.ema.load([ckpt["model"][name] for name in self.param_names], ckpt["ema_updates"])
            self.optimizer.load_state_dict(ckpt["optimizer"])
            self.scheduler.load_state_dict(ckpt["scheduler"])
            if ckpt["scaler"] is not None and self.scaler.is_enabled():
                self.scaler.load_state_dict(ckpt["scaler"])
            # how long to wait may change on resume: the counters come from the checkpoint
            patience, min_delta = self.early.patience, self.early.min_delta
            self.early.load_state_dict(ckpt["early_stopping"])
            self.early.patience, self.early.min_delta = patience, min_delta
            self.topk.load_state_dict(ckpt["topk"])
            self.sampler.load_state_dict(ckpt["sampler"])
            self.progress.load_state_dict(ckpt)
            self._restore_rng(ckpt)
        except (RuntimeError, KeyError, ValueError, TypeError, IndexError) as e:
            raise MigtError(f"{path}: incompatible checkpoint ({type(e).__name__}: {str(e).splitlines()[0][:300]})") from e


class CheckpointFiles:
    """The run's checkpoints/ directory: which file to resume from, and the files an epoch writes."""

    def __init__(self, directory: Path, topk: TopK, is_main: bool) -> None:
        self.directory = directory
        self.topk = topk
        self.is_main = is_main

    @property
    def last(self) -> Path:
        return self.directory / "last.pt"

    def resume_path(self, resume: str | None) -> Path | None:
        if resume in (None, "", False):
            return None
        if resume == "auto":
            if self.last.is_file():
                return self.last
            if self.is_main:
                log.info("trainer.resume=auto: no checkpoint at %s, starting fresh", self.last)
            return None
        return Path(resume)

    def after_restore(self, path: Path) -> None:
        """Top-k bookkeeping after a resume from `path`."""
        if path.resolve() == self.last.resolve():
            if self.is_main:  # drop top-k files a killed run wrote or failed to delete after last.pt
                self.topk.remove_untracked()
        else:  # foreign checkpoint: only track top-k files that exist in this run's directory
            self.topk.entries = [e for e in self.topk.entries if (self.directory / e[2]).is_file()]

    def save_last(self, state: dict[str, Any]) -> None:
        if self.is_main:
            save_torch(self.last, state)

    def write_epoch(self, state: dict[str, Any], epoch: int, val_loss: float, improved: bool) -> None:
        """Top-k file and best.pt as earned, last.pt last (so everything it references exists), then
        the top-k files that fell out."""
        if not self.is_main:
            return
        name, dropped = self.topk.offer(val_loss, epoch)
        state["topk"] = self.topk.state_dict()
        if name is not None:
            save_torch(self.directory / name, state)
        if improved:
            save_torch(self.directory / "best.pt", state)
        save_torch(self.last, state)
        for n in dropped:
            (self.directory / n).unlink(missing_ok=True)
