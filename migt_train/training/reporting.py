"""What a run reports while it trains: the progress bar, history.json, the fit result, and the
metrics logger interface (wandb or none)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple, Protocol

import torch

from migt_train.utils.io import write_json


class MetricsLogger(Protocol):
    def log_metrics(self, metrics: dict[str, float], step: int) -> None: ...
    def finish(self) -> None: ...


@dataclass
class FitResult:
    best_val_loss: float
    best_epoch: int
    epochs_run: int  # epochs completed in total, including those before a resume
    stopped_early: bool
    nonfinite_steps: int  # skipped optimizer steps over the whole run
    history: list[dict[str, Any]] = field(default_factory=list)
    best_checkpoint: Path | None = None


class Validation(NamedTuple):
    """What Trainer.validate(split) returns: the split's forecasts with their loss and metrics (the
    same on every rank; rows in time order)."""

    loss: float  # standardised pinball loss (the training objective), the split's mean
    metrics: dict[str, Any]  # quantile_metrics in log-return units
    quantiles: torch.Tensor  # (rows, horizons, levels) forecasts, log-return units
    targets: torch.Tensor  # (rows, horizons)


def progress_bar(enabled: bool, epoch: int, max_epochs: int, total: int, initial: int) -> Any:
    """A tqdm bar on a terminal for one epoch, plain periodic lines when stderr is redirected, or None."""
    from migt_train.utils.console import progress

    return progress(enabled, total, f"epoch {epoch}/{max_epochs}", initial)


def epoch_record(epoch: int, global_step: int, lr: float, val_loss: float, val_metrics: dict[str, Any],
                 seconds: float, train: dict[str, Any] | None = None) -> dict[str, Any]:
    """One entry of history.json. `train`: the epoch's training figures (_train_epoch); None for epoch 0,
    the initial weights validated before training (trainer.validate_before_training)."""
    return {
        "epoch": epoch, "global_step": global_step, "lr": lr,
        "train_loss": train["train_loss"] if train else None, "val_loss": val_loss, "val_metrics": val_metrics,
        "seconds": seconds,
        "samples_per_second": train["train_samples"] / max(train["train_seconds"], 1e-9) if train else None,
        "train_samples": train["train_samples"] if train else 0, "nonfinite_steps": train["nonfinite_steps"] if train else 0,
    }


def write_history(run_dir: Path, history: list[dict[str, Any]]) -> None:
    write_json(run_dir / "history.json", {"epochs": history})
