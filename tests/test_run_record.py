"""A run's record can be trusted (issue 12): real `python run.py` processes into real directories."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from data_helpers import data_cfg
from migt_train.data import load_market
from migt_train.cli.summarize import summarize

ROOT = Path(__file__).resolve().parents[1]


def _env(cwd: Path) -> dict[str, str]:
    env = {**os.environ, "MIGT_CACHE_DIR": str(cwd / "cache")}
    env.pop("HYDRA_FULL_ERROR", None)
    return env


def run_py(cwd: Path, *overrides: str, timeout: int = 300) -> subprocess.CompletedProcess:
    """`python run.py` exactly as given (no preset added: a resume must work without one)."""
    return subprocess.run([sys.executable, str(ROOT / "run.py"), *overrides], cwd=cwd, env=_env(cwd),
                          capture_output=True, text=True, timeout=timeout)


def start_py(cwd: Path, *overrides: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(ROOT / "run.py"), *overrides], cwd=cwd, env=_env(cwd),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def snapshot(run_dir: Path) -> dict[str, str]:
    """Every file under the run dir (hidden ones included) -> sha256 of its bytes."""
    return {str(p.relative_to(run_dir)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(run_dir.rglob("*")) if p.is_file()}


def wait_for(predicate, proc: subprocess.Popen, timeout: float = 120.0) -> None:
    t0 = time.time()
    while not predicate():
        assert proc.poll() is None, proc.communicate()[1][-3000:]
        assert time.time() - t0 < timeout, "timed out"
        time.sleep(0.2)


def status(run_dir: Path) -> dict:
    try:
        return json.loads((run_dir / "status.json").read_text())
    except (OSError, ValueError):
        return {}


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    cwd = tmp_path_factory.mktemp("finished")
    proc = run_py(cwd, "experiment=smoke", "hydra.run.dir=run", "tag=first try", "trainer.progress=true")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "\r" not in proc.stderr  # stderr is a pipe: plain progress lines, no bar redraws
    return cwd / "run"


# -- 1: resume checks before it writes ---------------------------------------------------------------

def test_resume_of_a_finished_run_changes_nothing_and_says_how_to_extend(finished_run: Path) -> None:
    cwd, before = finished_run.parent, snapshot(finished_run)
    proc = run_py(cwd, "trainer.resume=auto", "hydra.run.dir=run")  # without the original overrides
    assert proc.returncode == 2
    assert "finished" in proc.stderr and "trainer.max_epochs=N with N > 2" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr
    assert snapshot(finished_run) == before


def test_resume_refuses_what_changes_training_naming_every_key(finished_run: Path) -> None:
    cwd, before = finished_run.parent, snapshot(finished_run)
    proc = run_py(cwd, "trainer.resume=auto", "hydra.run.dir=run", "trainer.max_epochs=3",
                  "optimizer.lr=0.01", "data.synthetic.n_days=20")
    assert proc.returncode == 2
    line = proc.stderr.strip()
    assert len(line.splitlines()) == 1 and "cannot change what was trained" in line
    assert "optimizer.lr (0.001 -> 0.01)" in line and "data.synthetic.n_days (12 -> 20)" in line
    assert "trainer.max_epochs" not in line.split("A resume may change only")[0]
    # a fresh run into the used directory is refused as well, before Hydra writes anything
    proc = run_py(cwd, "experiment=smoke", "hydra.run.dir=run")
    assert proc.returncode == 2 and "already holds a run" in proc.stderr
    assert snapshot(finished_run) == before


def test_resume_takes_the_recorded_config_and_extends(finished_run: Path, tmp_path: Path) -> None:
    import shutil

    run_dir = tmp_path / "run"
    shutil.copytree(finished_run, run_dir)
    hydra_before = {k: v for k, v in snapshot(run_dir).items() if k.startswith(".hydra/")}
    proc = run_py(tmp_path, "trainer.resume=auto", "hydra.run.dir=run", "trainer.max_epochs=3")
    assert proc.returncode == 0, proc.stderr[-3000:]
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert config["trainer"]["max_epochs"] == 3 and config["model"]["d_model"] == 16  # smoke's, not the default
    assert [e["epoch"] for e in json.loads((run_dir / "history.json").read_text())["epochs"]] == [1, 2, 3]
    assert status(run_dir)["status"] == "completed"
    after = snapshot(run_dir)
    assert all(after[k] == v for k, v in hydra_before.items())  # .hydra/ still says how the run started
    (resume,) = (run_dir / ".hydra" / "resumes").iterdir()
    assert yaml.safe_load((resume / "overrides.yaml").read_text()) == ["trainer.resume=auto", "trainer.max_epochs=3"]


# -- 2 and 5: one process per run directory; clean stops ----------------------------------------------

def test_second_process_into_a_run_dir_is_refused_and_a_kill_shows_stale(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    first = start_py(tmp_path, "experiment=smoke", "hydra.run.dir=run", "trainer.max_epochs=50")
    try:
        wait_for(lambda: status(run_dir).get("status") == "running", first)
        assert status(run_dir)["pid"] == first.pid
        second = run_py(tmp_path, "experiment=smoke", "hydra.run.dir=run", "trainer.max_epochs=50")
        assert second.returncode == 2
        assert second.stderr.strip().splitlines() == [second.stderr.strip()]
        assert f"in use by pid {first.pid}" in second.stderr
        assert summarize(tmp_path)[0]["status"] == "running"
        wait_for(lambda: (run_dir / "checkpoints" / "last.pt").is_file(), first)
    finally:
        first.kill()
        first.wait()
    assert status(run_dir)["status"] == "running"
    assert summarize(tmp_path)[0]["status"] == "stale"
    orphan = run_dir / "checkpoints" / ".last.pt.abc123.tmp"  # what a kill mid-save leaves
    orphan.write_bytes(b"half a checkpoint")
    resumed = run_py(tmp_path, "trainer.resume=auto", "hydra.run.dir=run", "trainer.max_epochs=1")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert not orphan.exists()
    assert status(run_dir)["status"] == "completed" and summarize(tmp_path)[0]["status"] == "completed"


# -- 4: a cache that cannot lie ---------------------------------------------------------------------

def test_swapped_or_edited_feature_cache_is_rebuilt(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    cfg = data_cfg(cache_dir=str(tmp_path / "c"))
    first = load_market(cfg)
    (path,) = (tmp_path / "c").glob("features-*.parquet")
    good = pd.read_parquet(path)
    # another valid file with fewer rows, then the right rows with a NaN column
    for bad in (good.iloc[: len(good) // 3], good.assign(**{good.columns[3]: np.nan})):
        bad.to_parquet(path, index=False)
        with caplog.at_level(logging.WARNING, logger="migt_train.data.sources.cache"):
            caplog.clear()
            again = load_market(cfg)
        assert path.name in caplog.text and "rebuilding" in caplog.text
        assert torch.equal(first.features, again.features)
    # a cache file copied (with its fingerprint) under another key's name
    other = load_market(data_cfg(cache_dir=str(tmp_path / "c"), synthetic={"n_days": 13}))
    (other_path,) = set((tmp_path / "c").glob("features-*.parquet")) - {path}
    other_path.write_bytes(path.read_bytes())
    Path(str(other_path) + ".sha256.json").write_bytes(Path(str(path) + ".sha256.json").read_bytes())
    with caplog.at_level(logging.WARNING, logger="migt_train.data.sources.cache"):
        caplog.clear()
        again = load_market(data_cfg(cache_dir=str(tmp_path / "c"), synthetic={"n_days": 13}))
    assert "another cache key" in caplog.text
    assert torch.equal(other.features, again.features)


# -- 6: small things --------------------------------------------------------------------------------

def test_unwritable_run_dir_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "a_file").write_text("")
    proc = run_py(tmp_path, "experiment=smoke", "hydra.run.dir=a_file/run")
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [proc.stderr.strip()] and "a_file/run" in proc.stderr


def test_summarize_shows_the_tag(finished_run: Path) -> None:
    (row,) = summarize(finished_run.parent)
    assert row["tag"] == "first try" and row["status"] == "completed"
    assert json.loads((finished_run / "metrics.json").read_text())["tag"] == "first try"


def test_outputs_respect_the_umask(finished_run: Path) -> None:
    umask = os.umask(0o022)
    os.umask(umask)
    for name in ("config.yaml", "metrics.json", "status.json", "checkpoints/best.pt"):
        assert (finished_run / name).stat().st_mode & 0o777 == 0o666 & ~umask, name


# -- 3: divergence is never "completed" --------------------------------------------------------------

@pytest.mark.parametrize("overrides, said", [
    (("optimizer=sgd", "optimizer.lr=1e10"), "that of forecasting the training mean"),  # finite, absurd
    (("optimizer.lr=1e10",), "val loss is nan"),  # AdamW: the weights overflow, every forecast NaN
])
def test_divergence_fails_with_what_to_try(tmp_path: Path, overrides: tuple[str, ...], said: str) -> None:
    proc = run_py(tmp_path, "experiment=smoke", "hydra.run.dir=run", "trainer.max_epochs=1", *overrides)
    assert proc.returncode == 2, proc.stderr[-3000:]
    line = proc.stderr.strip()
    assert len(line.splitlines()) == 1 and line.startswith("error: training diverged at epoch 1")
    assert said in line and "lower optimizer.lr" in line
    assert status(tmp_path / "run")["status"] == "failed"
    assert not (tmp_path / "run" / "metrics.json").exists()


@pytest.mark.slow
def test_sigterm_during_the_final_evaluation_is_a_clean_stop(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    proc = start_py(tmp_path, "experiment=smoke", "hydra.run.dir=run", "evaluation.conformal=true")
    try:
        log_file = run_dir / "run.log"
        wait_for(lambda: log_file.is_file() and "final evaluation" in log_file.read_text(), proc, timeout=240)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 128 + signal.SIGTERM, err[-2000:]
    assert "during the final evaluation" in err and "Traceback" not in err
    record = status(run_dir)
    assert record["status"] == "interrupted" and "trainer.resume=auto" in record["message"]
    assert not (run_dir / "metrics.json").exists()
    resumed = run_py(tmp_path, "trainer.resume=auto", "hydra.run.dir=run")  # evaluates, trains nothing
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert status(run_dir)["status"] == "completed" and (run_dir / "metrics.json").is_file()
    assert len(json.loads((run_dir / "history.json").read_text())["epochs"]) == 2


def test_resume_refuses_a_config_yaml_that_its_checkpoint_contradicts(finished_run: Path, tmp_path: Path) -> None:
    import shutil

    run_dir = tmp_path / "run"
    shutil.copytree(finished_run, run_dir)
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    config["optimizer"]["lr"] = 0.5  # what an earlier version's resume left behind
    (run_dir / "config.yaml").write_text(yaml.safe_dump(config))
    before = snapshot(run_dir)
    proc = run_py(tmp_path, "trainer.resume=auto", "hydra.run.dir=run", "trainer.max_epochs=3")
    assert proc.returncode == 2
    assert "optimizer.lr (0.001 in last.pt, 0.5 in config.yaml)" in proc.stderr
    assert snapshot(run_dir) == before


def test_a_run_recorded_before_a_key_resumes_with_the_value_it_trained_with(tmp_path: Path) -> None:
    """trainer.instrument_decay came after the first pooled runs: one recorded without it resumes at 0 (how it
    trained, and what its optimizer's groups hold), not at today's default; one recorded with it keeps its own."""
    from migt_train.run.resume import ADDED_KEYS, plan_resume

    new = {"trainer": {"instrument_decay": 100.0, "max_epochs": 4}, "seed": 42}
    older = plan_resume(tmp_path, {"trainer": {"max_epochs": 4}, "seed": 42}, new, ["trainer.max_epochs=4"])
    assert older.take_recorded == {"trainer.instrument_decay": 0.0} == ADDED_KEYS
    recorded = plan_resume(tmp_path, {"trainer": {"instrument_decay": 30.0, "max_epochs": 4}, "seed": 42}, new, [])
    assert recorded.take_recorded == {"trainer.instrument_decay": 30.0}
    same = plan_resume(tmp_path, new, new, [])
    assert not same.take_recorded and not same.changed
