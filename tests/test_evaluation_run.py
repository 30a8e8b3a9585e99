"""evaluate_run and `python -m migt_train.evaluate` end to end on a toy market and model."""

import json
import subprocess
import sys
from pathlib import Path

import migt_train.data
import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from evaluation_helpers import LEVELS, make_history, make_market, make_model

from migt_train.cli.evaluate import main
from migt_train.evaluation.report import evaluate_run
from migt_train.training.inference import predict

FIT = {"best_epoch": 3, "best_val_loss": 0.41, "epochs_run": 6, "stopped_early": True, "n_parameters": 245, "world_size": 1}
PNG = b"\x89PNG\r\n\x1a\n"


def _evaluate(tmp: Path, conformal: bool = False, oracle: bool = True) -> tuple[Path, dict]:
    data = make_market()
    if not oracle:
        data.oracle, data.source = None, "ohlcv"
    (tmp / "history.json").write_text(json.dumps(make_history()))
    out = tmp / ("conf" if conformal else "raw")
    m = evaluate_run(out, make_model(data), data, LEVELS, fit_summary=FIT, history_path=tmp / "history.json",
                     batch_size=64, conformal=conformal, ewma_halflife=24)
    return out, m


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> tuple[Path, dict]:
    return _evaluate(tmp_path_factory.mktemp("eval"))


def test_writes_every_file(run):
    out, m = run
    assert json.loads((out / "metrics.json").read_text()) == json.loads(json.dumps(m))
    for png in ("loss_curves.png", "calibration.png"):
        blob = (out / "plots" / png).read_bytes()
        assert blob.startswith(PNG) and len(blob) > 5000
    assert (out / "predictions.parquet").stat().st_size > 0


def test_metrics_layout(run):
    _, m = run
    assert {k: m[k] for k in FIT} == FIT
    assert m["levels"] == LEVELS and m["horizons"] == ["5m", "15m", "30m"]
    assert m["n_test_samples"] == len(make_market().splits["test"])
    for block in (m["test"], m["baselines"]["climatology"], m["baselines"]["ewma"], m["oracle"]):
        assert {"pinball_loss", "crps", "calibration_error", "coverage", "intervals", "per_quantile_loss", "per_horizon"} <= set(block)
        assert set(block["per_horizon"]) == {"5m", "15m", "30m"}
    assert [i["nominal"] for i in m["test"]["intervals"]] == [0.89, 0.79, 0.5]
    L, Lc, Lo = m["test"]["pinball_loss"], m["baselines"]["climatology"]["pinball_loss"], m["oracle"]["pinball_loss"]
    assert m["skill_vs_climatology"] == pytest.approx(1 - L / Lc)
    assert m["oracle_gap_closed"] == pytest.approx((Lc - L) / (Lc - Lo))
    assert Lo < m["baselines"]["ewma"]["pinball_loss"] < Lc  # the toy market's volatility regimes are real signal
    assert "test_conformal" not in m
    noise = m["calibration_noise"]
    assert noise["n_samples"] == m["n_test_samples"] and noise["draws"] == 400
    assert 0 < noise["median"] < noise["p95"] and 0 < noise["p_value"] <= 1
    assert set(noise["coverage_band95"]) == {f"{t:g}" for t in LEVELS}


def test_baselines_and_comparison_keys(run):
    _, m = run
    assert set(m["baselines"]) == {"climatology", "ewma", "seasonal_climatology", "garch_t_tod"}
    for block in m["baselines"].values():
        assert set(m["test"]) <= set(block) and set(block["per_horizon"]) == {"5m", "15m", "30m"}
    g = m["baselines"]["garch_t_tod"]
    assert set(g["params"]) == {"omega", "alpha", "beta", "persistence", "nu", "mu"}
    assert g["converged"] is True and isinstance(g["message"], str) and g["fit_seconds"] > 0
    assert g["pinball_loss"] < m["baselines"]["climatology"]["pinball_loss"]
    losses = {k: b["pinball_loss"] for k, b in m["baselines"].items()}
    best = min(losses, key=losses.get)
    assert m["best_baseline"] == best
    L = m["test"]["pinball_loss"]
    assert m["skill_vs_best_baseline"] == pytest.approx(1 - L / losses[best])
    c = m["comparison"]
    assert c["baseline"] == best and c["block"] == 6 and c["n_boot"] > 0
    assert c["loss_difference"] == pytest.approx(L - losses[best], rel=1e-9, abs=1e-15)
    assert c["ci95"][0] <= c["loss_difference"] <= c["ci95"][1]
    for name, h in c["per_horizon"].items():
        want = m["test"]["per_horizon"][name]["pinball_loss"] - m["baselines"][best]["per_horizon"][name]["pinball_loss"]
        assert h["loss_difference"] == pytest.approx(want, rel=1e-9, abs=1e-15) and h["ci95"][0] <= h["ci95"][1]
    # one comparison per baseline, e.g. skill vs garch_t_tod with its interval whichever baseline is best
    assert set(m["comparisons"]) == set(m["baselines"]) and m["comparisons"][best]["ci95"] == c["ci95"]
    g = m["comparisons"]["garch_t_tod"]
    assert g["skill"] == pytest.approx(1 - L / losses["garch_t_tod"])
    assert g["ci95"][0] <= g["loss_difference"] <= g["ci95"][1] and set(g["per_horizon"]) == set(c["per_horizon"])


def test_predictions_parquet_matches_metrics(run):
    out, m = run
    df = pd.read_parquet(out / "predictions.parquet")
    data = make_market()
    assert len(df) == m["n_test_samples"] * 3
    assert list(df.columns[:5]) == ["timestamp", "row", "horizon", "horizon_bars", "target"]
    assert [c for c in df.columns if c.startswith("q_")] == [f"q_{t:g}" for t in LEVELS]
    assert str(df["timestamp"].dt.tz) == "UTC"
    first = df.iloc[0]
    assert first["row"] == int(data.splits["test"][0]) and first["horizon"] == "5m" and first["horizon_bars"] == 1
    assert first["timestamp"] == pd.Timestamp(data.timestamps[first["row"]], tz="UTC")
    assert first["target"] == pytest.approx(float(data.targets[first["row"], 0]))

    def loss(frame: pd.DataFrame) -> float:
        y = frame["target"].to_numpy(np.float64)
        per = [np.mean(np.maximum(t * (y - frame[f"q_{t:g}"]), (t - 1) * (y - frame[f"q_{t:g}"]))) for t in LEVELS]
        return float(np.mean(per))

    assert loss(df) == pytest.approx(m["test"]["pinball_loss"], rel=1e-9)
    for name, frame in df.groupby("horizon"):
        assert loss(frame) == pytest.approx(m["test"]["per_horizon"][name]["pinball_loss"], rel=1e-9)


def test_conformal_reported_beside_raw(tmp_path, run):
    out, m = _evaluate(tmp_path, conformal=True)
    assert m["test"] == run[1]["test"]  # the raw forecast is never replaced
    assert m["test_conformal"]["calibration_error"] < m["test"]["calibration_error"]
    assert set(m["conformal"]["shifts"]) == {"5m", "15m", "30m"} and m["conformal"]["fitted_on"] == "val"
    df = pd.read_parquet(out / "predictions.parquet")
    assert "conformal_q_0.5" in df.columns and (out / "plots" / "calibration_conformal.png").read_bytes().startswith(PNG)


def test_real_data_has_no_oracle(tmp_path):
    _, m = _evaluate(tmp_path, oracle=False)
    assert m["oracle"] is None and m["oracle_gap_closed"] is None and m["skill_vs_climatology"] is not None


def test_predict_batched_eval_mode():
    data = make_market()
    model = make_model(data).train()  # dropout 0.5: train mode would make forecasts random
    rows = data.splits["test"]
    a = predict(model, data, rows, batch_size=7)
    b = predict(model, data, rows, batch_size=512)
    assert a.shape == (len(rows), 3, 7) and torch.allclose(a, b, atol=1e-7) and model.training


# ---- CLI


@pytest.fixture
def cli(tmp_path, monkeypatch) -> tuple[Path, list]:
    """A finished run directory; load_market is stubbed (records the data config it is given)."""
    data = make_market()
    model = make_model(data)
    cfg = {
        "model": {"_target_": "toys.ToyQuantileModel", "n_variables": 3, "n_horizons": 3, "n_quantiles": 7,
                  "hidden": 8, "dropout": 0.5},
        "data": {"source": "synthetic", "path": None},
        "quantiles": {"levels": LEVELS},
        "evaluation": {"conformal": False, "batch_size": 64, "ewma_halflife": 24, "device": "cpu"},
    }
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(cfg))
    (tmp_path / "checkpoints").mkdir()
    torch.save({"model": model.state_dict(), "config": cfg, "epoch": 5}, tmp_path / "checkpoints" / "best.pt")
    (tmp_path / "metrics.json").write_text(json.dumps({**FIT, "test": {"pinball_loss": 1.0}}))
    (tmp_path / "history.json").write_text(json.dumps(make_history()))
    seen = []
    monkeypatch.setattr(migt_train.data, "load_market", lambda c, anchor_fit=None, trained=False, instruments=None, cross_body=None: seen.append(c) or make_market(), raising=False)
    return tmp_path, seen


def test_cli_writes_fresh_evaluation(cli, capsys):
    run_dir, seen = cli
    original = (run_dir / "metrics.json").read_text()
    assert main([str(run_dir), "data.path=other.parquet", "data.source=ohlcv", "evaluation.conformal=true"]) == 0
    (out,) = (run_dir / "evaluations").iterdir()
    m = json.loads((out / "metrics.json").read_text())
    assert {k: m[k] for k in FIT} == FIT and "test_conformal" in m
    assert (out / "predictions.parquet").is_file() and (out / "plots" / "loss_curves.png").is_file()
    assert "path: other.parquet" in (out / "config.yaml").read_text()
    assert seen[0].path == "other.parquet" and seen[0].source == "ohlcv"
    assert (run_dir / "metrics.json").read_text() == original
    printed = capsys.readouterr().out
    assert str(out / "metrics.json") in printed and f"vs best baseline {m['best_baseline']}" in printed and "95% CI" in printed
    assert f"(p = {m['calibration_noise']['p_value']:.3f} against exact calibration)" in printed
    assert main([str(run_dir)]) == 0 and len(list((run_dir / "evaluations").iterdir())) == 2


@pytest.mark.parametrize(
    "args, message",
    [
        (["{run}/nope"], "run directory not found"),
        (["{run}", "data.path"], "expected key=value"),
        (["{run}", "data.pth=x"], "no such key"),
        (["{run}", "model.n_variables=5"], "model does not match"),
    ],
)
def test_cli_errors_are_one_line(cli, capsys, args, message):
    run_dir = cli[0]
    assert main([a.format(run=run_dir) for a in args]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and message in err


@pytest.mark.slow
def test_cli_missing_checkpoint_subprocess(cli):
    run_dir = cli[0]
    (run_dir / "checkpoints" / "best.pt").unlink()
    p = subprocess.run([sys.executable, "-m", "migt_train.evaluate", str(run_dir)], capture_output=True, text=True,
                       cwd=Path(__file__).parents[1], timeout=120)
    assert p.returncode == 2 and "Traceback" not in p.stderr
    assert p.stderr.strip().count("\n") == 0 and "best.pt: checkpoint not found" in p.stderr
