"""Experiment loggers. The run directory's own files are always written; these add to them."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping, Sequence


class NullLogger:
    """logger=none: nothing beyond the run directory's files."""

    def __init__(self, run_dir: Path | None = None, run_config: Mapping[str, Any] | None = None) -> None:
        pass

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        pass

    def log_summary(self, summary: Mapping[str, Any]) -> None:
        pass

    def finish(self, exit_code: int = 0) -> None:
        pass


class WandbLogger(NullLogger):
    """logger=wandb: one W&B run per job; offline by default, so it never needs network or login."""

    def __init__(
        self,
        run_dir: Path,
        run_config: Mapping[str, Any],
        project: str = "migt-train",
        entity: str | None = None,
        mode: str = "offline",
        tags: Sequence[str] = (),
    ) -> None:
        # wandb reads these at import/init; setting them here keeps it from prompting for a login
        os.environ.setdefault("WANDB_SILENT", "true")
        if mode != "online":
            os.environ["WANDB_MODE"] = mode
        import wandb

        self._run = wandb.init(
            project=project,
            entity=entity,
            mode=mode,
            dir=str(run_dir),
            name=Path(run_dir).name,
            group=Path(run_dir).parent.name,
            config=dict(run_config),
            tags=list(tags),
            reinit="finish_previous",
        )

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        self._run.log(dict(metrics), step=step)

    def log_summary(self, summary: Mapping[str, Any]) -> None:
        self._run.summary.update(dict(summary))

    def finish(self, exit_code: int = 0) -> None:
        self._run.finish(exit_code=exit_code)
