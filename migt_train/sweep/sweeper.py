"""The Optuna sweeper of hydra-optuna-sweeper 1.3.0 with the bookkeeping a shared study needs.

Subclassing keeps the plugin's own ask -> launch -> tell loop and adds, around it:
- storage: a URL string is opened with `pool_pre_ping` (storage.open_storage);
- job dirs: each trial's job dir is named after its trial number (unique in the study) and
  claimed with an atomic mkdir, so workers and relaunches sharing `hydra.sweep.dir` never collide;
  the job learns its number through `hydra.job.env_set` and records it (runner);
- failures: a job that raised, or returned a non-finite objective (run.py returns inf for a
  failed run), is told to Optuna as FAIL instead of COMPLETE inf;
- stale trials: each trial records which process asked for it; at launch, RUNNING trials whose
  process on this host is gone are marked FAIL, and so is their job's status.json.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from pathlib import Path
from typing import Any, Dict, List, Sequence

import optuna
from hydra.core.utils import JobReturn, JobStatus
from hydra.plugins.launcher import Launcher
from hydra_plugins.hydra_optuna_sweeper._impl import OptunaSweeperImpl
from optuna.distributions import BaseDistribution
from optuna.trial import Trial, TrialState

from migt_train.config.resolvers import RUN_ID
from migt_train.sweep.storage import open_storage
from migt_train.sweep.trials import (
    HEARTBEAT_ATTR,
    HEARTBEAT_INTERVAL_S,
    OWNER_ATTR,
    TRIAL_NUMBER_ENV,
    claim_job_dir,
    mark_job_failed,
    owner_is_dead,
    owner_record,
    this_process,
)

log = logging.getLogger(__name__)


def _finite(value: Any) -> bool:
    values = value if isinstance(value, (list, tuple)) else [value]
    try:
        return all(math.isfinite(float(v)) for v in values)
    except (TypeError, ValueError):
        return True  # not a number at all: the optuna sweeper reports that itself


def _beat(trials: Sequence[Trial]) -> None:
    for trial in trials:
        trial.set_system_attr(HEARTBEAT_ATTR, time.time())


class _Heartbeat:
    """Refresh the running batch's heartbeats from a daemon thread while its jobs run."""

    def __init__(self, trials: Sequence[Trial], interval_s: float = HEARTBEAT_INTERVAL_S) -> None:
        self._trials = list(trials)
        self._interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="migt-heartbeat", daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self._interval_s):
            try:
                _beat(self._trials)
            except Exception:  # a database hiccup must not end the trial; the next beat retries
                log.warning("heartbeat of trials %s not recorded", [t.number for t in self._trials],
                            exc_info=True)

    def __enter__(self) -> "_Heartbeat":
        _beat(self._trials)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


class _TrialJobs:
    """Launcher wrapper: heartbeats while a batch runs; a non-finite objective fails the job.

    The optuna sweeper tells Optuna COMPLETE with whatever a completed job returned, and FAIL
    when reading a failed job's return value raises; run.py returns inf for a failed run so that
    the sweep goes on. This turns that inf into a failed JobReturn before the sweeper sees it.
    """

    def __init__(self, launcher: Launcher) -> None:
        self._launcher = launcher
        self.batch: list[Trial] = []  # the trials of the batch about to be launched
        self.launched = 0  # jobs that came back, over all batches of this sweep

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        with _Heartbeat(self.batch):
            returns = self._launcher.launch(job_overrides, initial_job_idx)
        self.launched += len(returns)
        for ret in returns:
            if ret.status == JobStatus.COMPLETED and not _finite(ret.return_value):
                job_dir = ret.hydra_cfg.hydra.runtime.output_dir if ret.hydra_cfg is not None else "?"
                ret.return_value = RuntimeError(
                    f"objective {ret.return_value}: the run failed or its validation loss is not "
                    f"finite (see {job_dir}/status.json)"
                )
                ret.status = JobStatus.FAILED
        return returns


class MigtOptunaSweeperImpl(OptunaSweeperImpl):
    def __init__(self, sampler: Any, direction: Any, storage: Any, *args: Any) -> None:
        super().__init__(sampler, direction, open_storage(storage), *args)

    def setup(self, *, hydra_context: Any, task_function: Any, config: Any) -> None:
        super().setup(hydra_context=hydra_context, task_function=task_function, config=config)
        self._jobs = _TrialJobs(self.launcher)
        self.launcher = self._jobs  # type: ignore[assignment]
        self._sweep_path = Path(str(config.hydra.sweep.dir)).absolute()
        self._launch_id = RUN_ID  # the sweep dir's own id: a fallback job dir name per launch

    def _study(self) -> optuna.Study:
        return optuna.create_study(
            study_name=self.study_name, storage=self.storage, sampler=self.sampler,
            directions=self._get_directions(), load_if_exists=True,
        )

    def sweep(self, arguments: List[str]) -> None:
        study = self._study()
        fail_stale_trials(study)
        try:
            super().sweep(arguments)
        except ValueError:
            # after its last batch the plugin reads study.best_trial, which raises when no trial
            # of the study has completed; any other ValueError is not ours to hide
            if self._jobs.launched < self.n_trials or study.get_trials(
                deepcopy=False, states=(TrialState.COMPLETE,)
            ):
                raise
            log.error(
                "no trial of study %s has completed yet: every trial failed (see the FAIL trials' "
                "job dirs under %s, status.json)", study.study_name, self._sweep_path,
            )

    def _configure_trials(
        self,
        trials: List[Trial],
        search_space_distributions: Dict[str, BaseDistribution],
        fixed_params: Dict[str, Any],
    ) -> Sequence[Sequence[str]]:
        overrides = super()._configure_trials(trials, search_space_distributions, fixed_params)
        self._jobs.batch = list(trials)
        out = []
        for trial, trial_overrides in zip(trials, overrides):
            subdir = claim_job_dir(self._sweep_path, trial.number, self._launch_id)
            trial.set_system_attr(OWNER_ATTR, owner_record(self._sweep_path / subdir))
            out.append((
                *trial_overrides,
                f"hydra.sweep.subdir={subdir}",
                f"+hydra.job.env_set.{TRIAL_NUMBER_ENV}={trial.number}",
            ))
        return out


def fail_stale_trials(study: optuna.Study) -> list[int]:
    """Mark FAIL the RUNNING trials whose sweep process is gone; returns their numbers.

    Optuna 2.10's heartbeat only covers `study.optimize`, not the sweeper's ask/tell loop, so
    each trial carries its owner (host, pid, process start time, job dir) and a heartbeat of its
    own instead (trials.owner_is_dead).
    """
    failed = []
    me = this_process()
    now = time.time()
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        owner = trial.system_attrs.get(OWNER_ATTR)
        if not owner or not owner_is_dead(owner, trial.system_attrs.get(HEARTBEAT_ATTR), now):
            continue
        try:
            study.tell(trial.number, state=TrialState.FAIL)
        except RuntimeError:  # finished meanwhile, e.g. by another worker's launch
            continue
        failed.append(trial.number)
        heartbeat = trial.system_attrs.get(HEARTBEAT_ATTR)
        how = "" if owner["host"] == me["host"] or heartbeat is None else (
            f" (no heartbeat for {now - float(heartbeat):.0f} s)"
        )
        message = (
            f"the sweep process {owner['host']}:{owner['pid']} stopped while trial {trial.number} "
            f"ran{how}; marked FAIL by the launch of {me['host']}:{me['pid']}"
        )
        log.warning("%s (job dir %s)", message, owner.get("job_dir"))
        if owner.get("job_dir"):
            mark_job_failed(Path(owner["job_dir"]), trial.number, message)
    return failed
