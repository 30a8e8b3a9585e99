"""Hydra callback that checks a single run's directory before Hydra writes anything into it.

Hydra creates `hydra.run.dir`, opens `run.log` and rewrites `.hydra/*.yaml` before the task function
runs, so checks made there come too late to leave a refused resume's directory untouched.
`on_run_start` runs before all of that, on the same config object the job then receives: here the
lock is taken, a fresh run refuses a used directory, and a resume takes the run's recorded config
(refusing changes to what was trained) and sends Hydra's own files of the resume to
`.hydra/resumes/<id>/`, so `.hydra/` keeps describing how the run was started.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf, open_dict, read_write

from migt_train.errors import RAISE_ERRORS, MigtError
from migt_train.run.resume import check_checkpoint_agrees, check_not_finished, load_recorded, plan_resume
from migt_train.run.record import acquire_lock, read_status, refuse_used_dir

log = logging.getLogger("migt_train")


class RunRefused(BaseException):
    """The guard's refusal under migt_train.train(): a BaseException, because Hydra turns an Exception
    raised in a callback into a warning and goes on; train() raises `error` to its caller."""

    def __init__(self, error: MigtError) -> None:
        super().__init__(str(error))
        self.error = error


def refuse(error: MigtError) -> None:
    """Stop before Hydra writes anything: one line and exit status 2 (run.py), RunRefused (train())."""
    if RAISE_ERRORS.get():
        raise RunRefused(error)
    print(f"error: {error}", file=sys.stderr)
    sys.exit(2)


class RunGuard(Callback):
    def __init__(self) -> None:
        self.notes: list[str] = []

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        try:
            self.notes = check_run_dir(config)
        except MigtError as e:
            refuse(e)
        except Exception as e:  # Hydra would only warn and go on writing into the directory
            refuse(MigtError(f"checking hydra.run.dir failed ({type(e).__name__}: {e})"))

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        from migt_train.utils.console import plain_optuna_logs

        if "optuna" in str(OmegaConf.select(config, "hydra.sweeper._target_", default="")):
            plain_optuna_logs()

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        # logging is configured now: say what the resume took from the record
        for note in self.notes:
            log.info(note)
        self.notes = []


def check_run_dir(config: DictConfig) -> list[str]:
    """Lock the run dir, check it and (for a resume) make `config` the recorded one; returns notes."""
    from migt_train.config.resolvers import RUN_ID

    run_dir = Path(str(OmegaConf.select(config, "hydra.run.dir"))).absolute()
    # under torchrun rank 0 holds the lock for the job; the other ranks make the same checks
    main = int(os.environ.get("RANK", "0")) == 0
    if main:
        acquire_lock(run_dir)
    if refuse_used_dir(run_dir, OmegaConf.select(config, "trainer.resume")):
        return []
    recorded = load_recorded(run_dir)
    if recorded is None or not (run_dir / "checkpoints" / "last.pt").is_file():
        return []  # nothing trained yet: the resume starts fresh with this command's config
    check_checkpoint_agrees(run_dir, recorded)
    task = OmegaConf.masked_copy(config, [k for k in config if k != "hydra"])
    new = OmegaConf.to_container(task, resolve=True)
    plan = plan_resume(run_dir, recorded, new, OmegaConf.to_container(config.hydra.overrides.task))
    with read_write(config), open_dict(config):
        for key, value in plan.take_recorded.items():
            OmegaConf.update(config, key, value, merge=False, force_add=True)
    trainer = OmegaConf.to_container(config.trainer, resolve=True)
    previous = read_status(run_dir)
    check_not_finished(run_dir, str(previous.get("status")), trainer)
    if main:  # other torchrun ranks write no Hydra files (run.py)
        with read_write(config), open_dict(config):
            config.hydra.output_subdir = f".hydra/resumes/{RUN_ID}"
    notes = []
    if previous.get("status") == "running":  # we hold the lock, so its process is gone
        notes.append(f"resume: the run's previous process (pid {previous.get('pid')} on {previous.get('host')}) "
                     "ended without recording it (killed?); continuing from its last checkpoint")
    if plan.take_recorded:
        notes.append(f"resume: {len(plan.take_recorded)} config values taken from {run_dir}/config.yaml "
                     f"({', '.join(sorted(plan.take_recorded)[:6])}{', ...' if len(plan.take_recorded) > 6 else ''})")
    for key, (old, value) in plan.changed.items():
        if key != "trainer.resume":
            notes.append(f"resume: {key} {old} -> {value}")
    return notes
