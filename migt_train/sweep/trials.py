"""Trial bookkeeping shared by the sweeper and the job: job dirs, owners, stale trials.

Light on purpose (no optuna import): the runner reads the trial number from here.
"""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path
from typing import Any, Mapping

from migt_train.utils.io import write_json

# The sweeper hands each job its Optuna trial number through Hydra's `hydra.job.env_set` (set in
# the job's process by every launcher, local or remote); the runner records it.
TRIAL_NUMBER_ENV = "MIGT_OPTUNA_TRIAL_NUMBER"
# Trial system attribute naming the sweep process that asked for the trial and its job dir.
OWNER_ATTR = "migt_owner"
# Trial system attribute the owning sweep process refreshes (unix time) while the trial runs.
HEARTBEAT_ATTR = "migt_heartbeat"
HEARTBEAT_INTERVAL_S = 60.0
# A trial of another host whose heartbeat is this old is stale: ten missed beats, far above
# the clock differences of NTP-synchronised hosts.
HEARTBEAT_GRACE_S = 600.0


def trial_number_of_job(hydra_cfg: Any) -> int | None:
    """The Optuna trial number of the running Hydra job, None outside an Optuna sweep."""
    env_set = hydra_cfg.job.get("env_set") or {}
    value = env_set.get(TRIAL_NUMBER_ENV)
    return None if value is None else int(value)


def claim_job_dir(sweep_dir: Path, trial_number: int, launch_id: str) -> str:
    """Create the trial's job dir exclusively; return its name (the `hydra.sweep.subdir`).

    The trial number is unique in the study, so workers and relaunches sharing a sweep dir never
    meet. Only another study writing into the same fixed sweep dir can hold that name already;
    then the launch id is appended. `mkdir` is atomic, so two processes never claim one name.
    """
    sweep_dir.mkdir(parents=True, exist_ok=True)
    for name in (str(trial_number), f"{trial_number}_{launch_id}"):
        try:
            (sweep_dir / name).mkdir()
            return name
        except FileExistsError:
            continue
    raise FileExistsError(f"{sweep_dir}: job dirs {trial_number} and {trial_number}_{launch_id} both exist")


def _process_start(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (Linux), to tell a reused pid apart."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]  # field 22 of proc(5); the name may hold spaces


def this_process() -> dict[str, Any]:
    return {"host": socket.gethostname(), "pid": os.getpid(), "start": _process_start(os.getpid())}


def owner_record(job_dir: Path) -> dict[str, Any]:
    return {**this_process(), "job_dir": str(job_dir)}


def owner_is_dead(owner: Mapping[str, Any], heartbeat: float | None, now: float) -> bool:
    """Whether the sweep process that owns a RUNNING trial is gone.

    On this host the process table says so exactly (a reused pid is told apart by its start
    time). A process on another host is judged by the trial's heartbeat, which its sweep process
    refreshes every HEARTBEAT_INTERVAL_S while the trial runs.
    """
    if owner.get("host") != socket.gethostname():
        return heartbeat is not None and now - float(heartbeat) > HEARTBEAT_GRACE_S
    pid = int(owner["pid"])
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        pass  # alive, another user's
    start = owner.get("start")
    return start is not None and _process_start(pid) not in (None, start)


def mark_job_failed(job_dir: Path, trial_number: int, message: str) -> bool:
    """Record a stale trial's fate in its job's status.json; a finished job's file is kept."""
    path = job_dir / "status.json"
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        record = {}
    if record.get("status") not in (None, "running"):
        return False
    if not job_dir.is_dir():
        return False
    started = record.get("started")
    write_json(path, {
        "status": "failed",
        "message": message,
        "started": started,
        "seconds": None if started is None else time.time() - started,
        "trial_number": trial_number,
    })
    return True
