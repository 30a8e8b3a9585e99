"""A pooled run end to end, as a user starts it: `python run.py` on several instruments, then predict, evaluate,
summarize and export on it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml

from data_helpers import small_bars, write_bars

ROOT = Path(__file__).resolve().parents[1]


POOLED = ("data.synthetic.instruments=3", "data.cross_asset=true", "data.vol_anchor=true",
          "data.synthetic.oracle_paths=64")


def run_py(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    # one thread: two pooled runs on 2 threads can differ in the last digits (docs/results.md, "Thread count and
    # repeatability"), and these tests compare runs of separate processes exactly
    env = {**os.environ, "MIGT_CACHE_DIR": str(cwd / "cache"), "OMP_NUM_THREADS": "1"}
    env.pop("HYDRA_FULL_ERROR", None)
    flags = [a for a in args if a.startswith("-")]
    overrides = [a for a in args if not a.startswith("-")]
    return subprocess.run([sys.executable, str(ROOT / "run.py"), *flags, "experiment=smoke", *overrides], cwd=cwd,
                          env=env, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def pooled_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    cwd = tmp_path_factory.mktemp("pooled")
    proc = run_py(cwd, *POOLED, "hydra.run.dir=run")
    assert proc.returncode == 0, proc.stderr[-3000:]
    os.environ["MIGT_CACHE_DIR"] = str(cwd / "cache")  # predict and evaluate below read the same cache
    return cwd / "run"


def test_pooled_run_reports_every_instrument(pooled_run: Path) -> None:
    names = ["syn0", "syn1", "syn2"]
    metrics = json.loads((pooled_run / "metrics.json").read_text())
    assert metrics["instruments"] == names and list(metrics["per_instrument"]) == names
    for block in metrics["per_instrument"].values():
        assert {"test", "baselines", "best_baseline", "skill_vs_best_baseline", "comparison", "calibration_noise",
                "oracle_gap_closed"} <= set(block)
        assert set(block["vs_baselines"]) == set(metrics["baselines"])
    assert sum(b["n_test_samples"] for b in metrics["per_instrument"].values()) == metrics["n_test_samples"]
    frame = pd.read_parquet(pooled_run / "predictions.parquet")
    assert list(frame["instrument"].unique()) == names
    config = yaml.safe_load((pooled_run / "config.yaml").read_text())
    # with the anchor the cross inputs are the heads' (three bar moves of each instrument), not more body variables
    assert config["model"]["n_instruments"] == 3 and config["model"]["n_variables"] == 24 and config["model"]["n_cross"] == 9
    assert set(json.loads((pooled_run / "vol_anchor.json").read_text())["instruments"]) == set(names)
    assert (pooled_run / "plots" / "calibration_instruments.png").stat().st_size > 0
    # every validated epoch scores each instrument's val rows; metrics.json keeps the kept epoch's beside test
    history = json.loads((pooled_run / "history.json").read_text())["epochs"]
    assert all(list(e["val_metrics"]["per_instrument"]) == names for e in history)
    kept = next(e for e in history if e["epoch"] == metrics["best_epoch"])
    for name in names:
        assert metrics["per_instrument"][name]["val"] == kept["val_metrics"]["per_instrument"][name]
    assert "val pinball by instrument: syn0" in (pooled_run / "run.log").read_text()


def test_predict_gives_every_instruments_latest_bar(pooled_run: Path) -> None:
    from migt_train.cli.predict import latest_table, predict_run
    from migt_train.data import load_market
    from migt_train.data.pooled import instrument_view
    from migt_train.evaluation.from_run import load_run_config

    _, forecasts = predict_run(pooled_run)
    cfg = load_run_config(pooled_run)[0]
    market = load_market(cfg.data)
    for name, part in forecasts.groupby("instrument"):
        last = instrument_view(market, name).timestamps[-1]
        assert len(part) == 5 and (part["timestamp"] == pd.Timestamp(last, tz="UTC")).all()
    assert sorted(forecasts["instrument"].unique()) == ["syn0", "syn1", "syn2"]
    assert latest_table(forecasts).count("forecast from the bar starting") == 3


def test_evaluate_scores_the_instruments_asked_for(pooled_run: Path) -> None:
    from migt_train.evaluation.from_run import evaluate_checkpoint

    run_metrics = json.loads((pooled_run / "metrics.json").read_text())
    _, metrics = evaluate_checkpoint(pooled_run, ["evaluation.instruments=[syn1]"])
    assert list(metrics["per_instrument"]) == ["syn1"]
    # the same forecasts as the run's own evaluation, for that instrument's test rows
    assert metrics["test"]["pinball_loss"] == pytest.approx(run_metrics["per_instrument"]["syn1"]["test"]["pinball_loss"],
                                                            rel=1e-6)


def test_summarize_and_export_show_each_instrument(pooled_run: Path, tmp_path: Path) -> None:
    from migt_train.cli.export import export_instruments
    from migt_train.cli.summarize import format_table, summarize

    rows = summarize(pooled_run.parent)
    assert set(rows[0]["per_instrument"]) == {"syn0", "syn1", "syn2"}
    assert "  syn2" in format_table(rows)
    metrics = json.loads((pooled_run / "metrics.json").read_text())
    assert rows[0]["per_instrument"]["syn1"]["val_pinball"] == metrics["per_instrument"]["syn1"]["val"]["pinball_loss"]
    written = export_instruments(tmp_path / "bars.csv", ["data.synthetic.instruments=2", "data.synthetic.n_days=3"])
    assert [p.name for p, _ in written] == ["bars_syn0.csv", "bars_syn1.csv"]


def test_one_instrument_map_is_the_single_file_run(tmp_path: Path) -> None:
    path = write_bars(small_bars(n_days=12, seed=5), tmp_path / "nq.csv")
    single = run_py(tmp_path, "data=ohlcv", f"data.path={path}", "hydra.run.dir=single")
    named = run_py(tmp_path, "data=ohlcv", f"data.path={{NQ:{path}}}", "hydra.run.dir=named")
    assert single.returncode == 0 and named.returncode == 0, (single.stderr[-2000:], named.stderr[-2000:])
    a, b = (json.loads((tmp_path / d / "metrics.json").read_text()) for d in ("single", "named"))
    assert a["test"] == b["test"] and _timeless(a["baselines"]) == _timeless(b["baselines"]) and "per_instrument" not in b


def test_map_and_list_of_files_give_the_same_run(tmp_path: Path) -> None:
    nq = write_bars(small_bars(n_days=12, seed=5), tmp_path / "nq.csv")
    es = write_bars(small_bars(n_days=12, seed=6), tmp_path / "es.csv")
    by_map = run_py(tmp_path, "data=ohlcv", f"data.path={{nq:{nq},es:{es}}}", "hydra.run.dir=map")
    by_list = run_py(tmp_path, "data=ohlcv", f"data.path=[{nq},{es}]", "hydra.run.dir=list")
    assert by_map.returncode == 0 and by_list.returncode == 0, (by_map.stderr[-2000:], by_list.stderr[-2000:])
    a, b = (json.loads((tmp_path / d / "metrics.json").read_text()) for d in ("map", "list"))
    assert a["test"] == b["test"] and _timeless(a["per_instrument"]) == _timeless(b["per_instrument"])


def _timeless(d):
    """metrics without the wall-clock entries (garch_t_tod's fit_seconds)."""
    if isinstance(d, dict):
        return {k: _timeless(v) for k, v in d.items() if k != "fit_seconds"}
    return d


@pytest.mark.slow
def test_pooled_run_under_ddp_and_in_a_sweep(tmp_path: Path) -> None:
    env = {**os.environ, "MIGT_CACHE_DIR": str(tmp_path / "cache"), "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    env.pop("HYDRA_FULL_ERROR", None)
    pooled = ("data.synthetic.instruments=2", "data.cross_asset=true", "data.synthetic.oracle_paths=64")
    ddp = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                          str(ROOT / "run.py"), "experiment=smoke", *pooled, "hydra.run.dir=ddp"],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert ddp.returncode == 0, ddp.stderr[-3000:]
    metrics = json.loads((tmp_path / "ddp" / "metrics.json").read_text())
    assert metrics["world_size"] == 2 and list(metrics["per_instrument"]) == ["syn0", "syn1"]
    sweep = run_py(tmp_path, "-m", "hparams_search=optuna", "hydra.sweeper.n_trials=2", "trainer.max_epochs=1",
                   "trainer.limit_train_batches=2", *pooled)
    assert sweep.returncode == 0, sweep.stderr[-3000:]
    (study,) = list((tmp_path / "outputs" / "multiruns").iterdir())
    for job in ("0", "1"):
        assert list(json.loads((study / job / "metrics.json").read_text())["per_instrument"]) == ["syn0", "syn1"]


@pytest.mark.slow  # three runs (~45 s); the group itself: test_training_integration, test_run_record
def test_pooled_anchored_run_resumes_exactly(tmp_path: Path) -> None:
    """A pooled run with the anchor (its optimizer has the deviations' group, trainer.instrument_decay) stopped
    after one epoch and resumed gives the uninterrupted run's val losses and weights."""
    two = run_py(tmp_path, *POOLED, "trainer.max_epochs=2", "hydra.run.dir=full")
    assert two.returncode == 0, two.stderr[-3000:]
    one = run_py(tmp_path, *POOLED, "trainer.max_epochs=1", "hydra.run.dir=split")
    assert one.returncode == 0, one.stderr[-3000:]
    env = {**os.environ, "MIGT_CACHE_DIR": str(tmp_path / "cache"), "OMP_NUM_THREADS": "1"}
    resumed = subprocess.run([sys.executable, str(ROOT / "run.py"), "trainer.resume=auto", "trainer.max_epochs=2",
                              "hydra.run.dir=split"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    history = [json.loads((tmp_path / d / "history.json").read_text())["epochs"] for d in ("full", "split")]
    assert [e["val_loss"] for e in history[0]] == [e["val_loss"] for e in history[1]]
    last = [torch.load(tmp_path / d / "checkpoints" / "last.pt", weights_only=True) for d in ("full", "split")]
    assert len(last[0]["optimizer"]["param_groups"]) == 2
    assert last[0]["optimizer"]["param_groups"][-1]["weight_decay"] == 100.0
    assert all(torch.equal(last[0]["model"][k], last[1]["model"][k]) for k in last[0]["model"])
