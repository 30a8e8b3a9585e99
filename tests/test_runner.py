"""End-to-end runs of `python run.py` as a user starts them: real Hydra, real files, real Optuna."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from migt_train.cli.summarize import main as summarize_main
from migt_train.cli.summarize import summarize

ROOT = Path(__file__).resolve().parents[1]



def run_py(cwd: Path, *args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "MIGT_CACHE_DIR": str(cwd / "cache"), "WANDB_MODE": "offline"}
    env.pop("HYDRA_FULL_ERROR", None)
    flags = [a for a in args if a.startswith("-")]
    overrides = [a for a in args if not a.startswith("-")]
    return subprocess.run(
        [sys.executable, str(ROOT / "run.py"), *flags, "experiment=smoke", *overrides],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout,
    )


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    cwd = tmp_path_factory.mktemp("smoke")
    proc = run_py(cwd, "logger=wandb")
    assert proc.returncode == 0, proc.stderr[-3000:]
    (run_dir,) = list((cwd / "outputs" / "runs").iterdir())
    return run_dir


def test_smoke_run_writes_every_file(smoke_run: Path) -> None:
    for name in ["config.yaml", ".hydra/config.yaml", ".hydra/overrides.yaml", "history.json",
                 "metrics.json", "status.json", "predictions.parquet", "run.log",
                 "checkpoints/last.pt", "checkpoints/best.pt", "plots/loss_curves.png",
                 "plots/calibration.png"]:
        assert (smoke_run / name).is_file() and (smoke_run / name).stat().st_size > 0, name
    assert list((smoke_run / "checkpoints").glob("epoch=*-val_loss=*.pt"))
    assert "${" not in (smoke_run / "config.yaml").read_text()
    config = yaml.safe_load((smoke_run / "config.yaml").read_text())
    assert config["trainer"]["max_epochs"] == 2 and config["model"]["n_quantiles"] == 7
    metrics = json.loads((smoke_run / "metrics.json").read_text())
    assert metrics["world_size"] == 1 and metrics["n_parameters"] > 0
    assert metrics["epochs_run"] == 2
    history = json.loads((smoke_run / "history.json").read_text())["epochs"]
    assert [e["epoch"] for e in history] == [1, 2]
    assert metrics["best_val_loss"] == pytest.approx(min(e["val_loss"] for e in history))
    assert json.loads((smoke_run / "status.json").read_text())["status"] == "completed"
    assert "test" in (smoke_run / "run.log").read_text()


def test_smoke_metrics_compare_with_every_baseline(smoke_run: Path) -> None:
    metrics = json.loads((smoke_run / "metrics.json").read_text())
    assert set(metrics["baselines"]) == {"climatology", "ewma", "seasonal_climatology", "garch_t_tod", "har_gk"}
    assert {"params", "converged", "message", "fit_seconds"} <= set(metrics["baselines"]["garch_t_tod"])
    har = metrics["baselines"]["har_gk"]["params"]
    assert set(har) == set(metrics["horizons"])
    assert all(set(p) == {"intercept", "1bar", "1h", "1d", "1w", "r2"} for p in har.values())
    assert metrics["best_baseline"] in metrics["baselines"] and metrics["skill_vs_best_baseline"] is not None
    comparison = metrics["comparison"]
    assert {"baseline", "loss_difference", "ci95", "block", "n_boot", "per_horizon"} <= set(comparison)
    assert comparison["block"] == 48 and set(comparison["per_horizon"]) == set(metrics["horizons"])
    assert "vs best baseline" in (smoke_run / "run.log").read_text()


def test_wandb_offline_files_in_run_dir(smoke_run: Path) -> None:
    runs = list((smoke_run / "wandb").glob("offline-run-*"))
    assert len(runs) == 1
    assert list(runs[0].glob("*.wandb"))


def test_summarize_lists_runs(smoke_run: Path, capsys: pytest.CaptureFixture) -> None:
    root = smoke_run.parent
    rows = summarize(root)
    assert len(rows) == 1 and rows[0]["status"] == "completed" and rows[0]["epochs"] == 2
    assert rows[0]["test_pinball"] > 0
    metrics = json.loads((smoke_run / "metrics.json").read_text())
    assert rows[0]["calibration_p"] == metrics["calibration_noise"]["p_value"]
    assert summarize_main([str(root)]) == 0
    out = capsys.readouterr().out
    assert smoke_run.name in out and "best_val_loss" in out
    assert summarize_main([str(root), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["run"] == smoke_run.name


def test_max_epochs_0_evaluates_the_initial_weights(tmp_path: Path) -> None:
    """trainer.max_epochs=0: a complete run whose best.pt is the initial weights: those a run with
    validate_before_training scores as its epoch 0, same seed."""
    import torch

    from migt_train.training.checkpoint import load_checkpoint

    proc = run_py(tmp_path, "trainer.max_epochs=0", "hydra.run.dir=outputs/initial")
    assert proc.returncode == 0, proc.stderr[-3000:]
    run = tmp_path / "outputs" / "initial"
    for name in ["config.yaml", "history.json", "metrics.json", "predictions.parquet", "checkpoints/best.pt",
                 "plots/calibration.png"]:
        assert (run / name).is_file(), name
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["best_epoch"] == 0 and metrics["epochs_run"] == 0 and metrics["test"]["pinball_loss"] > 0
    history = json.loads((run / "history.json").read_text())["epochs"]
    assert [e["epoch"] for e in history] == [0] and history[0]["val_loss"] == metrics["best_val_loss"]
    assert json.loads((run / "status.json").read_text())["status"] == "completed"

    proc = run_py(tmp_path, "trainer.max_epochs=1", "trainer.validate_before_training=true", "hydra.run.dir=outputs/one")
    assert proc.returncode == 0, proc.stderr[-3000:]
    one = tmp_path / "outputs" / "one"
    assert json.loads((one / "history.json").read_text())["epochs"][0]["val_loss"] == history[0]["val_loss"]
    (epoch0,) = (one / "checkpoints").glob("epoch=000-*.pt")
    best, start = load_checkpoint(run / "checkpoints" / "best.pt")["model"], load_checkpoint(epoch0)["model"]
    assert best.keys() == start.keys() and all(torch.equal(best[k], start[k]) for k in best)


def test_bad_value_stops_before_work_with_one_line(tmp_path: Path) -> None:
    proc = run_py(tmp_path, "optimizer.lr=-1")
    assert proc.returncode == 2
    assert "optimizer.lr" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "cache").exists()  # no data was generated


def test_bad_data_file_is_one_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "bars.parquet"
    bad.write_text("not a parquet file")
    proc = run_py(tmp_path, "data=ohlcv", f"data.path={bad}")
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "bars.parquet" in proc.stderr and "Traceback" not in proc.stderr
    (run_dir,) = list((tmp_path / "outputs" / "runs").iterdir())
    assert json.loads((run_dir / "status.json").read_text())["status"] == "failed"
    assert not (run_dir / "metrics.json").exists()


def test_optuna_sweep_resumes_in_sqlite(tmp_path: Path) -> None:
    args = ["-m", "hparams_search=optuna", "hydra.sweeper.n_trials=3", "trainer.max_epochs=1",
            "trainer.limit_train_batches=2"]
    first = run_py(tmp_path, *args, "logger=wandb")
    assert first.returncode == 0, first.stderr[-3000:]
    second = run_py(tmp_path, *args)
    assert second.returncode == 0, second.stderr[-3000:]

    db = sqlite3.connect(tmp_path / "outputs" / "optuna.db")
    states = db.execute("select state from trials order by number").fetchall()
    params = db.execute(
        "select trial_id, param_name, param_value from trial_params order by trial_id, param_name"
    ).fetchall()
    db.close()
    assert [s for (s,) in states] == ["COMPLETE"] * 6
    by_trial: dict[int, tuple] = {}
    for trial_id, name, value in params:
        by_trial.setdefault(trial_id, ())
        by_trial[trial_id] += ((name, value),)
    points = list(by_trial.values())
    assert len(points) == 6 and len(set(points[3:]) & set(points[:3])) == 0

    sweeps = sorted((tmp_path / "outputs" / "multiruns").iterdir())
    assert len(sweeps) == 2
    # each job dir is named after its Optuna trial number, unique in the study
    for sweep, expected in zip(sweeps, (["0", "1", "2"], ["3", "4", "5"])):
        jobs = sorted(p.name for p in sweep.iterdir() if p.is_dir() and p.name.isdigit())
        assert jobs == expected
        for job in jobs:
            assert json.loads((sweep / job / "metrics.json").read_text())["trial_number"] == int(job)
    for job in ("0", "1", "2"):  # the first launch logged to wandb: one offline run per job
        assert len(list((sweeps[0] / job / "wandb").glob("offline-run-*"))) == 1
    assert len(summarize(tmp_path / "outputs")) == 6
