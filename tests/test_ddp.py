"""DDP as users launch it: real `torchrun` (python -m torch.distributed.run) subprocesses with two CPU
processes over gloo, real Hydra, real files; compared with a real single-process run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from migt_train.training.checkpoint import load_checkpoint

ROOT = Path(__file__).resolve().parents[1]



def _env(cwd: Path) -> dict[str, str]:
    env = {**os.environ, "MIGT_CACHE_DIR": str(cwd / "cache"), "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    env.pop("HYDRA_FULL_ERROR", None)
    return env


def _command(nproc: int, overrides: tuple[str, ...]) -> list[str]:
    # --standalone: a local rendezvous on a free port, so tests never collide on MASTER_PORT
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(nproc)] \
        if nproc > 1 else [sys.executable]
    return [*launcher, str(ROOT / "run.py"), "experiment=smoke", *overrides]


def launch(cwd: Path, nproc: int, *overrides: str, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run(_command(nproc, overrides), cwd=cwd, env=_env(cwd), capture_output=True, text=True,
                          timeout=timeout)


def epochs(run_dir: Path) -> list[dict]:
    return json.loads((run_dir / "history.json").read_text())["epochs"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The smoke experiment once on 2 processes and once on 1 (same seed, same config)."""
    out = {}
    for name, nproc in (("ddp", 2), ("single", 1)):
        cwd = tmp_path_factory.mktemp(name)
        proc = launch(cwd, nproc)
        assert proc.returncode == 0, proc.stderr[-4000:]
        run_dirs = list((cwd / "outputs" / "runs").iterdir())
        assert len(run_dirs) == 1, run_dirs  # every rank agreed on one run directory
        assert sorted(p.name for p in (cwd / "outputs").iterdir()) == ["runs"]
        out[name] = run_dirs[0]
    return out


def test_ddp_run_completes_in_one_run_dir_written_once(runs: dict[str, Path]) -> None:
    run = runs["ddp"]
    assert json.loads((run / "status.json").read_text())["status"] == "completed"
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["world_size"] == 2 and metrics["epochs_run"] == 2
    log = (run / "run.log").read_text()
    assert log.count("epoch 1/2") == 1 and log.count("test: pinball") == 1  # rank 0 alone logs
    assert "2 processes" in log
    assert sorted(p.name for p in (run / ".hydra").iterdir()) == ["config.yaml", "hydra.yaml", "overrides.yaml"]
    ckpt = load_checkpoint(run / "checkpoints" / "last.pt")
    assert not any(k.startswith("module.") for k in ckpt["model"])  # the raw model's state, not DDP's
    assert len(ckpt["rng_ranks"]) == 2
    assert not torch.equal(ckpt["rng_ranks"][0]["torch"], ckpt["rng_ranks"][1]["torch"])  # dropout offset by rank


def test_ddp_sees_the_samples_of_one_process_once(runs: dict[str, Path]) -> None:
    ddp, single = epochs(runs["ddp"]), epochs(runs["single"])
    assert [e["train_samples"] for e in ddp] == [e["train_samples"] for e in single] == [64, 64]
    assert [e["global_step"] for e in ddp] == [e["global_step"] for e in single]
    # same global batches and the same weights at start: only dropout masks differ between the runs
    for a, b in zip(ddp, single):
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=0.01)
        assert a["val_loss"] == pytest.approx(b["val_loss"], rel=0.01)


def test_ddp_best_checkpoint_reevaluated_in_one_process(runs: dict[str, Path], tmp_path: Path) -> None:
    run = runs["ddp"]
    proc = subprocess.run([sys.executable, "-m", "migt_train.evaluate", str(run)], cwd=tmp_path, env=_env(tmp_path),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (again,) = list((run / "evaluations").glob("*/metrics.json"))
    first, second = (json.loads(p.read_text())["test"] for p in (run / "metrics.json", again))
    for key in ("pinball_loss", "crps", "calibration_error"):
        assert second[key] == pytest.approx(first[key], rel=1e-6), key


def _rank_pid(launcher: subprocess.Popen, rank: int) -> int | None:
    """The pid of the worker with RANK=rank among the launcher's children (Linux /proc)."""
    try:
        children = Path(f"/proc/{launcher.pid}/task/{launcher.pid}/children").read_text().split()
    except OSError:
        return None
    for pid in children:
        try:
            env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if f"RANK={rank}".encode() in env:
            return int(pid)
    return None


@pytest.mark.slow
def test_sigterm_to_one_rank_stops_all_and_resumes_across_world_sizes(tmp_path: Path) -> None:
    proc = subprocess.Popen(_command(2, ("trainer.max_epochs=200",)), cwd=tmp_path, env=_env(tmp_path),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 240
        while not list(tmp_path.glob("outputs/runs/*/history.json")):  # training is under way
            assert proc.poll() is None and time.time() < deadline, "DDP run ended before its first epoch"
            time.sleep(0.2)
        pid = _rank_pid(proc, 1)
        assert pid is not None
        os.kill(pid, signal.SIGTERM)
        _, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode != 0
    assert stderr.count("interrupted: training interrupted by SIGTERM") == 2, stderr[-3000:]  # both ranks stopped
    assert "exitcode  : 143" in stderr or "exitcode: 143" in stderr
    (run,) = list((tmp_path / "outputs" / "runs").iterdir())
    assert json.loads((run / "status.json").read_text())["status"] == "interrupted"
    stopped = load_checkpoint(run / "checkpoints" / "last.pt")
    assert len(stopped["rng_ranks"]) == 2
    done = stopped["epoch"]
    assert [e["epoch"] for e in epochs(run)] == list(range(1, done + 1))

    # DDP (2) -> one process: resume the interrupted run and train one more epoch
    resumed = launch(tmp_path, 1, "trainer.resume=auto", f"trainer.max_epochs={done + 1}", f"hydra.run.dir={run}")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    history = epochs(run)
    assert [e["epoch"] for e in history] == list(range(1, done + 2))
    assert history[-1]["train_samples"] == 64
    assert json.loads((run / "metrics.json").read_text())["world_size"] == 1
    assert len(load_checkpoint(run / "checkpoints" / "last.pt")["rng_ranks"]) == 1

    # one process -> DDP (2): rank 1 has no saved RNG state and is seeded afresh
    again = launch(tmp_path, 2, "trainer.resume=auto", f"trainer.max_epochs={done + 2}", f"hydra.run.dir={run}")
    assert again.returncode == 0, again.stderr[-3000:]
    history = epochs(run)
    assert [e["epoch"] for e in history] == list(range(1, done + 3))
    assert history[-1]["train_samples"] == 64
    assert json.loads((run / "metrics.json").read_text())["world_size"] == 2
    assert len(list((tmp_path / "outputs" / "runs").iterdir())) == 1
