"""`migt_train.train(overrides)`: a whole run from Python, through the same code path as `python run.py`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import migt_train
from migt_train.errors import MigtError

ROOT = Path(__file__).resolve().parents[1]



@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MIGT_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path


def test_train_from_python_equals_run_py_and_returns_the_run_dir(workdir: Path) -> None:
    run_dir = migt_train.train(["experiment=smoke", f"hydra.run.dir={workdir / 'nb'}"])
    assert run_dir == workdir / "nb"
    for name in ["config.yaml", ".hydra/config.yaml", "run.log", "metrics.json", "history.json",
                 "checkpoints/best.pt", "plots/loss_curves.png"]:
        assert (run_dir / name).is_file(), name
    assert json.loads((run_dir / "status.json").read_text())["status"] == "completed"
    assert "test: pinball" in (run_dir / "run.log").read_text()

    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, str(ROOT / "run.py"), "experiment=smoke", f"hydra.run.dir={workdir / 'cli'}"],
                          cwd=workdir, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]

    def figures(d: Path) -> tuple:
        history = json.loads((d / "history.json").read_text())["epochs"]
        metrics = json.loads((d / "metrics.json").read_text())
        return [(e["epoch"], e["val_loss"], e["train_loss"]) for e in history], metrics["test"], metrics["best_epoch"]

    assert figures(run_dir) == figures(workdir / "cli")


def test_train_raises_one_line_errors_instead_of_exiting(workdir: Path) -> None:
    with pytest.raises(MigtError, match="data.nope"):
        migt_train.train(["experiment=smoke", "data.nope=1", f"hydra.run.dir={workdir / 'bad'}"])
    with pytest.raises(MigtError, match="config key 'data.bar_minutes'"):
        migt_train.train(["experiment=smoke", "data.bar_minutes=7", f"hydra.run.dir={workdir / 'bad'}"])
    first = migt_train.train(["experiment=smoke", "trainer.max_epochs=1"])  # outputs/runs/<run id>
    assert first.parent == workdir / "outputs" / "runs"
    with pytest.raises(MigtError, match="already holds a run"):
        migt_train.train(["experiment=smoke", f"hydra.run.dir={first}"])
    assert json.loads((first / "status.json").read_text())["status"] == "completed"
    second = migt_train.train(["experiment=smoke", "trainer.max_epochs=1"])
    assert second != first and second.parent == first.parent  # a fresh run id per call
