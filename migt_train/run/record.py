"""The run directory as a record: one process per directory (a lock), status.json with the owner
process, and telling a live run from one whose process is gone.

Why flock: the kernel drops the lock when the process dies (kill -9 included), so a stale `.lock`
file never blocks a resume, and two processes racing into one fresh directory cannot both pass.
The lock file is opened without truncation and only written after the lock is held, so a refused
process changes nothing in the directory.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import socket
import time
from pathlib import Path
from typing import Any, Iterator

from migt_train.errors import MigtError
from migt_train.utils.io import write_json

LOCK_NAME = ".lock"
# directories whose lock this process holds; the fd stays open for the life of the process
_held: dict[Path, int] = {}


def holds_run(run_dir: Path) -> bool:
    """True when training already happened in `run_dir` (a fresh run must not reuse it)."""
    return (run_dir / "history.json").exists() or (run_dir / "checkpoints").exists()


def refuse_used_dir(run_dir: Path, resume: Any) -> bool:
    """The one "directory already holds a run" check (the run guard's for single runs, the runner's for
    sweep jobs and callers composing their own config): a fresh run (trainer.resume unset) refuses a
    used directory. Returns whether the run is fresh."""
    if resume not in (None, ""):
        return False
    if holds_run(run_dir):
        raise MigtError(f"{run_dir} already holds a run; pass trainer.resume=auto to continue it "
                        "or choose another hydra.run.dir")
    return True


def _read_owner(path: Path) -> str:
    try:
        owner = json.loads(path.read_text())
        return f"pid {owner['pid']} on {owner['host']}"
    except (OSError, ValueError, KeyError, TypeError):
        return "another process"


def acquire_lock(run_dir: Path) -> None:
    """Hold `<run_dir>/.lock` until this process exits; MigtError naming the holder when another
    process has it. Idempotent within a process."""
    run_dir = Path(run_dir).resolve()
    if run_dir in _held:
        return
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(run_dir / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o666)
    except OSError as e:
        raise MigtError(f"hydra.run.dir {run_dir}: cannot write there ({e.strerror})") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as e:
        os.close(fd)
        if e.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            raise MigtError(f"{run_dir / LOCK_NAME}: cannot lock ({e.strerror})") from None
        raise MigtError(
            f"{run_dir} is in use by {_read_owner(run_dir / LOCK_NAME)} (lock {LOCK_NAME}); "
            "one process per run directory: wait for it, stop it, or choose another hydra.run.dir"
        ) from None
    _held[run_dir] = fd


def claim_lock(run_dir: Path) -> None:
    """Write this process's pid and host into the held lock file (after every check passed)."""
    fd = _held[Path(run_dir).resolve()]
    os.ftruncate(fd, 0)
    os.pwrite(fd, (json.dumps(owner()) + "\n").encode(), 0)


def owner() -> dict[str, Any]:
    return {"pid": os.getpid(), "host": socket.gethostname(), "process_started": _process_started()}


def _process_started(pid: int | None = None) -> float | None:
    """Start time of a process (seconds since boot, Linux /proc), to tell a reused pid apart."""
    try:
        fields = Path(f"/proc/{pid or os.getpid()}/stat").read_text().rsplit(")", 1)[1].split()
        return int(fields[19]) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


def process_alive(pid: int, host: str, process_started: float | None = None) -> bool | None:
    """True/False for a process on this host; None when it ran on another host (cannot tell)."""
    if host != socket.gethostname():
        return None
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, owned by someone else
    if process_started is not None:
        now = _process_started(int(pid))
        if now is not None and abs(now - process_started) > 1.0:
            return False  # the pid was reused by another process
    return True


def read_status(run_dir: Path) -> dict[str, Any]:
    try:
        record = json.loads((Path(run_dir) / "status.json").read_text())
        return record if isinstance(record, dict) else {}
    except (OSError, ValueError):
        return {}


def effective_status(record: dict[str, Any]) -> str:
    """status.json's status, with a "running" whose process is gone shown as "stale"."""
    status = str(record.get("status", "unknown"))
    if status != "running" or "pid" not in record:
        return status
    alive = process_alive(record["pid"], str(record.get("host")), record.get("process_started"))
    if alive is False:
        return "stale"
    return "running" if alive else f"running@{record.get('host')}"


def write_status(run_dir: Path, status: str, started: float, message: str | None = None,
                 trial_number: int | None = None) -> None:
    record = {"status": status, "message": message, "started": started,
              "seconds": time.time() - started, **owner()}
    if trial_number is not None:
        record["trial_number"] = trial_number
    write_json(Path(run_dir) / "status.json", record)


def remove_orphan_temps(run_dir: Path) -> list[Path]:
    """Delete temp files of atomic writes that a killed process left behind (lock held: none is live)."""
    run_dir = Path(run_dir)
    orphans = [p for p in [*run_dir.glob(".*.tmp"), *(run_dir / "checkpoints").glob(".*.tmp")] if p.is_file()]
    for p in orphans:
        p.unlink(missing_ok=True)
    return orphans


class RunRecord:
    """status.json of one run, written only once this process owns the directory: a run refused
    because the directory is locked or holds another run must not relabel that run."""

    def __init__(self, run_dir: Path, trial_number: int | None = None) -> None:
        self.run_dir = Path(run_dir)
        self.trial_number = trial_number  # Optuna trial of a sweep job
        self.started = time.time()
        self.owned = False

    def take(self) -> None:
        """Lock the directory (MigtError when another process has it)."""
        acquire_lock(self.run_dir)

    def own(self) -> None:
        """Every check passed: this process's run is what the directory records from now on."""
        claim_lock(self.run_dir)
        self.owned = True

    def status(self, status: str, message: str | None = None) -> None:
        if not self.owned:
            return
        try:
            write_status(self.run_dir, status, self.started, message, self.trial_number)
        except MigtError:
            if status == "running" or status == "completed":
                raise
            # a failure or a stop recorded while handling it: when the disk refuses this too (full, say), the
            # error being handled is the one line to show; status.json keeps "running" and reads as stale


def where_line(run_dir: Path) -> str:
    """The run's last line: where its record is."""
    run_dir = Path(run_dir)
    plots = sorted(p.name for p in (run_dir / "plots").glob("*.png"))
    shown = ", ".join(f"plots/{n}" for n in plots) if plots else "no plots"
    return (f"done: run dir {run_dir} (metrics.json, predictions.parquet, {shown}, run.log); "
            f"compare runs with: python -m migt_train.summarize {run_dir.parent}")


def fresh_subdir(run_dir: Path, kind: str) -> Path:
    """A new, empty run_dir/kind/<timestamp>[_i] (e.g. kind "evaluations" or "forecasts"): never reuses one.
    A directory that cannot be written is one MigtError that offers --out."""
    from datetime import datetime

    stamp = datetime.now().strftime("%Y-%m-%d_%H-%M-%S")
    for i in range(1000):
        out = run_dir / kind / (stamp if i == 0 else f"{stamp}_{i}")
        try:
            out.mkdir(parents=True)
            return out
        except FileExistsError:
            continue
        except OSError as e:
            raise MigtError(f"{run_dir / kind}: cannot write there ({e.strerror}); write the output elsewhere with "
                            "--out DIR") from None
    raise MigtError(f"{run_dir / kind}: cannot create a fresh directory there")


@contextlib.contextmanager
def output_dir(run_dir: Path, kind: str, out: str | Path | None = None) -> Iterator[Path]:
    """Where evaluate and predict write, made before any work so that an unwritable place is found first:
    `out` (new, or an empty directory: nothing is overwritten) or a fresh run_dir/kind/<timestamp>. Left
    empty by a failure, it is removed again."""
    if out is None:
        path = fresh_subdir(Path(run_dir), kind)
    else:
        path = Path(out)
        if path.exists() and (not path.is_dir() or any(path.iterdir())):
            raise MigtError(f"{path}: exists and is not an empty directory; give --out a new one (nothing is "
                            "overwritten)")
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise MigtError(f"{path}: cannot write there ({e.strerror})") from None
    try:
        yield path
    except BaseException:
        with contextlib.suppress(OSError):
            path.rmdir()  # only when still empty
        raise
