"""What a run reports while it trains: the progress bar, history.json, the fit result, and the
metrics logger interface (wandb or none)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

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


def progress_bar(enabled: bool, epoch: int, max_epochs: int, total: int, initial: int) -> Any:
    """A tqdm bar on a terminal for one epoch, plain periodic lines when stderr is redirected, or None."""
    from migt_train.utils.console import progress

    return progress(enabled, total, f"epoch {epoch}/{max_epochs}", initial)


def write_history(run_dir: Path, history: list[dict[str, Any]]) -> None:
    write_json(run_dir / "history.json", {"epochs": history})
