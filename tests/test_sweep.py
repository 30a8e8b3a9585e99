"""Optuna sweeps shared by several workers: real PostgreSQL and SQLite storages, real `run.py -m`.

What must hold (issue 14): trials of concurrent workers accumulate in one study without duplicates,
every job gets its own dir under a shared `hydra.sweep.dir` and records its trial number, a relaunch
never touches the first launch's files, failed trials are stored FAIL, and a trial left RUNNING by
a dead worker is failed at the next launch.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from hydra import compose, initialize_config_dir
from optuna.trial import TrialState

import migt_train.config.schema  # noqa: F401  (registers the ${migt.*} resolvers)
from migt_train.sweep.trials import HEARTBEAT_ATTR, OWNER_ATTR
from postgres_fixture import postgres_url  # noqa: F401  (fixture)

ROOT = Path(__file__).resolve().parents[1]
# the smoke experiment cut to one short epoch: the bookkeeping is under test, not the model
FAST = ["experiment=smoke", "trainer.max_epochs=1", "trainer.limit_train_batches=2"]


def sweep_cmd(*overrides: str) -> list[str]:
    return [sys.executable, str(ROOT / "run.py"), "-m", "hparams_search=optuna", *FAST, *overrides]


def env_for(cwd: Path) -> dict[str, str]:
    env = {**os.environ, "MIGT_CACHE_DIR": str(cwd / "cache"), "WANDB_MODE": "offline"}
    env.pop("HYDRA_FULL_ERROR", None)
    return env


def run_sweep(cwd: Path, *overrides: str, timeout: int = 300) -> subprocess.CompletedProcess:
    proc = subprocess.run(sweep_cmd(*overrides), cwd=cwd, env=env_for(cwd), capture_output=True,
                          text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def job_dirs(sweep_dir: Path) -> dict[str, Path]:
    return {p.name: p for p in sweep_dir.iterdir() if p.is_dir() and not p.name.startswith(".")}


def snapshot(directory: Path) -> dict[str, tuple[float, str]]:
    return {str(p.relative_to(directory)): (p.stat().st_mtime_ns, hashlib.sha1(p.read_bytes()).hexdigest())
            for p in sorted(directory.rglob("*")) if p.is_file()}


def check_jobs(study: optuna.Study, sweep_dir: Path) -> None:
    """Each COMPLETE trial has its own job dir, named after it, that records its number."""
    dirs = job_dirs(sweep_dir)
    for trial in study.get_trials(states=(TrialState.COMPLETE,)):
        job = dirs[str(trial.number)]
        metrics = json.loads((job / "metrics.json").read_text())
        status = json.loads((job / "status.json").read_text())
        assert metrics["trial_number"] == trial.number and status["trial_number"] == trial.number
        assert status["status"] == "completed"
        assert metrics["best_val_loss"] == pytest.approx(trial.value)
        assert trial.system_attrs[OWNER_ATTR]["job_dir"] == str(job)


def test_two_workers_share_a_postgresql_study(tmp_path: Path, postgres_url: str) -> None:  # noqa: F811
    # both workers start at once on an empty database: they create Optuna's tables together too
    sweep_dir = tmp_path / "sweep"
    shared = [f"hydra.sweeper.storage={postgres_url}", f"hydra.sweep.dir={sweep_dir}",
              "hydra.sweeper.n_trials=2"]
    workers = [subprocess.Popen(sweep_cmd(*shared), cwd=tmp_path, env=env_for(tmp_path), text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(2)]
    for worker in workers:
        out, err = worker.communicate(timeout=300)
        assert worker.returncode == 0, err[-3000:]

    study = optuna.load_study(study_name="migt_smoke", storage=postgres_url)
    trials = study.get_trials()
    assert sorted(t.number for t in trials) == [0, 1, 2, 3]  # the sum of both workers' trials
    assert all(t.state == TrialState.COMPLETE for t in trials)
    assert all(t.value is not None and t.value == t.value and abs(t.value) < float("inf") for t in trials)
    owners = {t.system_attrs[OWNER_ATTR]["pid"] for t in trials}
    assert owners == {w.pid for w in workers}  # both workers asked for trials of the one study
    points = {tuple(sorted(t.params.items())) for t in trials}
    assert len(points) == 4  # no worker repeated another's point
    assert sorted(job_dirs(sweep_dir)) == ["0", "1", "2", "3"]
    check_jobs(study, sweep_dir)
    assert not (tmp_path / "outputs" / "optuna.db").exists()  # nothing went to the SQLite default


@pytest.mark.slow
def test_relaunch_into_a_fixed_sweep_dir_adds_jobs_and_keeps_old_files(tmp_path: Path) -> None:
    sweep_dir = tmp_path / "sweep"
    args = [f"hydra.sweep.dir={sweep_dir}", "hydra.sweeper.n_trials=2"]
    run_sweep(tmp_path, *args)
    first = {name: snapshot(job) for name, job in job_dirs(sweep_dir).items()}
    assert sorted(first) == ["0", "1"]
    run_sweep(tmp_path, *args)

    assert sorted(job_dirs(sweep_dir)) == ["0", "1", "2", "3"]
    for name, files in first.items():
        assert snapshot(sweep_dir / name) == files, f"job {name} of the first launch was touched"
    study = optuna.load_study(study_name="migt_smoke", storage=f"sqlite:///{tmp_path}/outputs/optuna.db")
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 4
    check_jobs(study, sweep_dir)


@pytest.mark.slow
def test_failed_trials_are_stored_as_fail(tmp_path: Path) -> None:
    # a negative weight decay fails every trial's config validation; the sweep goes on
    run_sweep(tmp_path, "hydra.sweeper.n_trials=2", "optimizer.weight_decay=-1")
    study = optuna.load_study(study_name="migt_smoke", storage=f"sqlite:///{tmp_path}/outputs/optuna.db")
    assert [(t.state, t.value) for t in study.trials] == [(TrialState.FAIL, None)] * 2
    (sweep,) = (tmp_path / "outputs" / "multiruns").iterdir()
    for number in ("0", "1"):
        status = json.loads((sweep / number / "status.json").read_text())
        assert status["status"] == "failed" and "optimizer.weight_decay" in status["message"]
        assert status["trial_number"] == int(number)


@pytest.mark.slow
def test_trial_left_running_by_a_dead_worker_is_failed_at_next_launch(tmp_path: Path) -> None:
    storage = f"sqlite:///{tmp_path}/outputs/optuna.db"
    sweep_dir = tmp_path / "sweep"
    (tmp_path / "outputs").mkdir()
    study = optuna.create_study(study_name="migt_smoke", storage=storage)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, check=True)
    here, now = socket.gethostname(), time.time()
    owners = [
        (here, int(dead.stdout), None),  # 0: its worker on this host died mid-run
        (here, os.getpid(), None),  # 1: its worker on this host is alive
        ("another-host", 1, now - 3600),  # 2: a worker elsewhere, silent for an hour
        ("another-host", 1, now),  # 3: a worker elsewhere that beat just now
    ]
    for host, pid, heartbeat in owners:
        trial = study.ask()
        job = sweep_dir / str(trial.number)
        job.mkdir(parents=True)
        (job / "status.json").write_text(json.dumps({"status": "running", "started": 0.0}))
        trial.set_system_attr(OWNER_ATTR, {"host": host, "pid": pid, "start": None, "job_dir": str(job)})
        if heartbeat is not None:
            trial.set_system_attr(HEARTBEAT_ATTR, heartbeat)

    run_sweep(tmp_path, f"hydra.sweep.dir={sweep_dir}", "hydra.sweeper.n_trials=1")

    study = optuna.load_study(study_name="migt_smoke", storage=storage)
    assert [t.state for t in study.trials] == [TrialState.FAIL, TrialState.RUNNING, TrialState.FAIL,
                                               TrialState.RUNNING, TrialState.COMPLETE]
    for number, pid in ((0, dead.stdout.strip()), (2, "another-host:1")):
        stale = json.loads((sweep_dir / str(number) / "status.json").read_text())
        assert stale["status"] == "failed" and pid in stale["message"] and stale["trial_number"] == number
    for number in (1, 3):
        assert json.loads((sweep_dir / str(number) / "status.json").read_text())["status"] == "running"
    # the new trial carried a heartbeat while it ran
    assert study.trials[4].system_attrs[HEARTBEAT_ATTR] >= now
    check_jobs(study, sweep_dir)


def test_heartbeat_is_refreshed_while_a_batch_runs(tmp_path: Path) -> None:
    from migt_train.sweep.sweeper import _Heartbeat

    study = optuna.create_study(storage=f"sqlite:///{tmp_path}/optuna.db")
    trials = [study.ask(), study.ask()]
    with _Heartbeat(trials, interval_s=0.05):
        first = [study.trials[i].system_attrs[HEARTBEAT_ATTR] for i in (0, 1)]
        time.sleep(0.5)
    last = [study.trials[i].system_attrs[HEARTBEAT_ATTR] for i in (0, 1)]
    assert all(b > a for a, b in zip(first, last))
    time.sleep(0.2)  # stopped on exit: no beat after the batch
    assert [study.trials[i].system_attrs[HEARTBEAT_ATTR] for i in (0, 1)] == last


@pytest.mark.parametrize(
    ("experiment", "warmup", "t_0"),
    [("smoke", 2, 2), ("quickstart", 2000, 4), ("quality", 2000, 4), ("nq_full", 2000, 20)],
)
def test_search_ranges_follow_the_experiment_schedule(experiment: str, warmup: int, t_0: int) -> None:
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("config", overrides=["hparams_search=optuna", f"experiment={experiment}"],
                      return_hydra_config=True)
    params = cfg.hydra.sweeper.params
    assert params["scheduler.warmup_steps"] == f"int(interval(0, {warmup}))"
    assert params["scheduler.t_0"] == f"int(interval(1, {t_0}))"
    t = cfg.trainer
    assert t_0 <= t.max_epochs
    if t.limit_train_batches is not None:  # at most a quarter of the run's optimizer steps
        assert warmup <= t.max_epochs * t.limit_train_batches // t.gradient_accumulation_steps // 4


@pytest.mark.slow
def test_joblib_launcher_runs_a_parallel_batch(tmp_path: Path) -> None:
    # one sweep process, a batch of two trials run at once by two joblib (loky) worker processes
    run_sweep(tmp_path, "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "hydra.sweeper.n_jobs=2",
              "hydra.sweeper.n_trials=2")
    study = optuna.load_study(study_name="migt_smoke", storage=f"sqlite:///{tmp_path}/outputs/optuna.db")
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 2
    (sweep,) = (tmp_path / "outputs" / "multiruns").iterdir()
    assert sorted(job_dirs(sweep)) == ["0", "1"]
    check_jobs(study, sweep)


@pytest.mark.slow
def test_submitit_launcher_runs_trials_in_their_own_processes(tmp_path: Path) -> None:
    # submitit's local executor: the SLURM launcher's code path (pickled launcher, job run in a
    # fresh process from the per-trial overrides) without a cluster
    sweep_dir = tmp_path / "sweep"
    run_sweep(tmp_path, "hydra/launcher=submitit_local", "hydra.sweeper.n_jobs=2", "hydra.sweeper.n_trials=2",
              f"hydra.sweep.dir={sweep_dir}")
    study = optuna.load_study(study_name="migt_smoke", storage=f"sqlite:///{tmp_path}/outputs/optuna.db")
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 2
    assert sorted(job_dirs(sweep_dir)) == ["0", "1"]
    check_jobs(study, sweep_dir)


def test_slurm_launcher_config_composes_one_task_per_gpu() -> None:
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("config", overrides=["hparams_search=optuna", "experiment=nq_full",
                                           "hydra/launcher=slurm_gpu", "hydra.sweeper.n_jobs=4",
                                           "hydra.launcher.gpus_per_node=2"], return_hydra_config=True)
    launcher = cfg.hydra.launcher
    assert launcher._target_ == "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher"
    assert launcher.gpus_per_node == 2 and launcher.tasks_per_node == 2
    assert launcher.array_parallelism == 4 and launcher.max_num_timeout == 0
    assert cfg.hydra.sweeper._target_.startswith("hydra_plugins.migt_optuna_sweeper.")


def _drop_connections(url: str) -> None:
    """What a server restart or an idle-connection timeout does to a worker's pooled connections."""
    import psycopg2

    admin = psycopg2.connect(url)
    admin.autocommit = True
    with admin.cursor() as cursor:
        cursor.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                       "WHERE datname = current_database() AND pid <> pg_backend_pid()")
    admin.close()


def test_storage_connections_survive_being_dropped(postgres_url: str) -> None:  # noqa: F811
    from optuna.exceptions import StorageInternalError

    from migt_train.sweep.storage import open_storage

    pinged = optuna.create_study(study_name="ping", storage=open_storage(postgres_url), load_if_exists=True)
    plain = optuna.create_study(study_name="ping", storage=postgres_url, load_if_exists=True)
    pinged.ask()
    plain.ask()
    _drop_connections(postgres_url)
    pinged.ask()  # the ping finds the dead connection and opens a new one
    with pytest.raises(StorageInternalError, match="commit") as failure:  # without the ping it fails
        plain.ask()
    assert "server closed the connection" in str(failure.value.__cause__)
