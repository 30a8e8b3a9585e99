"""A run directory made without training: the composed config as the runner records it and best.pt holding the
untrained model's weights. What predict and evaluate read from a run, in well under a second."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Sequence

from omegaconf import OmegaConf

from migt_train.config.compose import compose_config


def made_run(run_dir: Path, overrides: Sequence[str] = (), status: str = "completed") -> Path:
    """`python run.py experiment=smoke <overrides>` as far as what it leaves in the run dir (no training)."""
    from hydra.utils import instantiate

    from migt_train.config.schema import resolved_container
    from migt_train.utils.io import save_torch, write_json, write_text

    cfg = compose_config(["experiment=smoke", *overrides])
    plain = resolved_container(cfg)
    run_dir.mkdir(parents=True)
    write_text(run_dir / "config.yaml", OmegaConf.to_yaml(plain))
    model = instantiate(OmegaConf.create(plain)["model"])
    save_torch(run_dir / "checkpoints" / "best.pt", {"model": model.state_dict(), "epoch": 1})
    write_json(run_dir / "status.json", {"status": status, "message": None, "started": time.time(), "seconds": 1.0,
                                         "pid": os.getpid(), "host": os.uname().nodename})
    (run_dir / ".hydra").mkdir()
    return run_dir


def read_status(run_dir: Path) -> dict:
    return json.loads((run_dir / "status.json").read_text())
