"""Forecasts for the latest bar (`python -m migt_train.predict`, `migt_train.load_run`) and the evaluate CLI on
a whole other file, from a smoke run trained on an OHLCV file."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import migt_train
from migt_train.errors import MigtError
from migt_train.evaluation.from_run import evaluate_checkpoint
from migt_train.cli.predict import main as predict_main

from data_helpers import small_bars, write_bars

ROOT = Path(__file__).resolve().parents[1]
LEVELS = ["0.05", "0.1", "0.25", "0.5", "0.75", "0.89", "0.94"]


def _continuous(n: int, seed: int = 1) -> pd.DataFrame:
    """n bars of a 24-hour market: 5-minute bars without any break (the lookback is then exactly 288 bars)."""
    bars = small_bars(n_days=3, seed=seed).head(n).copy()
    bars["timestamp"] = pd.date_range("2024-03-04 00:00", periods=n, freq="5min")
    return bars


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, Path]:
    cwd = tmp_path_factory.mktemp("predict")
    path = write_bars(small_bars(n_days=14, seed=4), cwd / "bars.csv")
    env = {**os.environ, "MIGT_CACHE_DIR": str(cwd / "cache")}
    proc = subprocess.run(
        [sys.executable, str(ROOT / "run.py"), "experiment=smoke", "data=ohlcv", f"data.path={path}"],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    (run_dir,) = list((cwd / "outputs" / "runs").iterdir())
    return run_dir, path


def test_run_records_rolls(trained):
    record = json.loads((trained[0] / "rolls.json").read_text())
    assert record == {"symbol": None, "contracts": [], "dropped_spreads": 0, "rolls": []}


def test_older_run_with_removed_keys_forecasts_with_the_network_alone(trained, tmp_path, caplog):
    """A run from before the seasonal blend, price grid, GJR anchor and initial guard were removed: its keys and files are
    ignored with one warning, the network's forecasts are scored, and an override of a removed key is refused."""
    import logging
    import shutil

    import yaml

    run_dir, _ = trained
    old = shutil.copytree(run_dir, tmp_path / "run", ignore=shutil.ignore_patterns("forecasts", "evaluations"))
    cfg = yaml.safe_load((old / "config.yaml").read_text())
    cfg["evaluation"].update(seasonal_blend=True, price_tick="auto")
    cfg["data"]["vol_anchor_leverage"] = False
    cfg["trainer"]["beat_initial"] = "significant"
    (old / "config.yaml").write_text(yaml.safe_dump(cfg))
    (old / "seasonal_blend.json").write_text('{"weight": 0.5}')
    with caplog.at_level(logging.WARNING):
        _, m = evaluate_checkpoint(old, [])
    warned = [r.getMessage() for r in caplog.records if "removed from migt-train" in r.getMessage()]
    assert len(warned) == 1 and "evaluation.seasonal_blend, evaluation.price_tick" in warned[0]
    own = json.loads((run_dir / "metrics.json").read_text())
    assert m["test"]["pinball_loss"] == pytest.approx(own["test"]["pinball_loss"], rel=1e-6)
    assert "seasonal_blend" not in m and "price_grid" not in m
    for key in ("evaluation.seasonal_blend=false", "data.vol_anchor_leverage=true", "trainer.beat_initial=lower"):
        with pytest.raises(MigtError, match="no such key"):
            evaluate_checkpoint(old, [key])


def test_mid_session_file_latest_forecast(trained, tmp_path, capsys):
    run_dir, _ = trained
    bars = small_bars(n_days=3, seed=9)
    bars = bars.iloc[: len(bars) - 100]  # ends mid-session, 100 bars before the close
    path = write_bars(bars, tmp_path / "today.csv")
    assert predict_main([str(run_dir), f"data.path={path}"]) == 0
    out = capsys.readouterr().out
    (fdir,) = list((run_dir / "forecasts").iterdir())
    f = pd.read_parquet(fdir / "forecasts.parquet")
    assert len(f) == 5 and f["horizon"].tolist() == ["15m", "30m", "1h", "2h", "4h"]
    assert (f["timestamp"] == pd.Timestamp(bars["timestamp"].iloc[-1], tz="UTC")).all()
    assert f["target"].isna().all()
    q = f[[f"q_{lv}" for lv in LEVELS]].to_numpy(np.float64)
    assert np.isfinite(q).all() and (np.diff(q, axis=1) >= 0).all()
    assert np.allclose(f["close"], bars["close"].iloc[-1])
    price = f[[f"price_q_{lv}" for lv in LEVELS]].to_numpy()
    np.testing.assert_allclose(price, bars["close"].iloc[-1] * np.exp(q), rtol=1e-12)
    assert "4h" in out and "%" in out and f"{bars['close'].iloc[-1]:,.6g}" in out


def test_warmup_plus_one_lookback_suffices(trained, tmp_path):
    run = migt_train.load_run(trained[0])
    f = run.predict(_continuous(72 + 288), last=1)
    assert len(f) == 5 and f["row"].nunique() == 1
    with pytest.raises(MigtError, match=r"too few bars \(359 rows.*warm-up 72 \+ one lookback of 288 bars = 360"):
        run.predict(_continuous(72 + 287), last=1)


def test_api_and_cli_agree(trained, tmp_path, capsys):
    run_dir, _ = trained
    bars = small_bars(n_days=3, seed=11)
    path = write_bars(bars, tmp_path / "b.parquet")
    assert predict_main([str(run_dir), f"data.path={path}", "--last", "3"]) == 0
    capsys.readouterr()
    newest = sorted((run_dir / "forecasts").iterdir())[-1]
    cli = pd.read_parquet(newest / "forecasts.parquet")
    api = migt_train.load_run(run_dir).predict(bars, last=3)
    assert cli["row"].nunique() == 3 and len(cli) == 15
    pd.testing.assert_frame_equal(cli.reset_index(drop=True), api.reset_index(drop=True), check_dtype=False)


def test_same_numerics_as_evaluation(trained):
    """Forecasts on the run's own file equal the test predictions the run wrote (same rows, same quantiles)."""
    run_dir, _ = trained
    f = migt_train.load_run(run_dir).predict(None, last=None)
    pred = pd.read_parquet(run_dir / "predictions.parquet")
    merged = pred.merge(f, on=["timestamp", "horizon"], suffixes=("", "_f"))
    assert len(merged) == len(pred)
    for lv in LEVELS:
        np.testing.assert_allclose(merged[f"q_{lv}"], merged[f"q_{lv}_f"], rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(merged["target"], merged["target_f"], rtol=1e-6)


def test_evaluate_scores_whole_other_file(trained, tmp_path):
    run_dir, _ = trained
    other = write_bars(small_bars(n_days=6, seed=21), tmp_path / "other.csv")
    out, m = evaluate_checkpoint(run_dir, [f"data.path={other}"])
    n_bars = len(small_bars(n_days=6, seed=21))
    # every bar after warm-up with a full lookback and all horizons known
    lookback = 288  # 24 h of Globex bars reach back over the daily break: the by-time rule binds first
    assert m["n_test_samples"] > 0.7 * n_bars
    assert m["n_test_samples"] <= n_bars - 72 - 48 - lookback + 13
    assert m["baseline_settings"]["fitted_on"].startswith("test (in-sample")


def test_predict_errors(trained, tmp_path, capsys):
    run_dir, _ = trained
    assert predict_main([str(run_dir), "--last", "0"]) == 2
    assert "--last: must be >= 1" in capsys.readouterr().err
    assert predict_main([str(tmp_path / "nope")]) == 2
    assert "run directory not found" in capsys.readouterr().err
    assert predict_main([str(run_dir), "data.nokey=1"]) == 2
    assert "no such key" in capsys.readouterr().err


def test_import_stays_light():
    code = "import sys, migt_train; assert 'torch' not in sys.modules and 'pandas' not in sys.modules; migt_train.load_run"
    subprocess.run([sys.executable, "-c", code], check=True, env={**os.environ, "PYTHONPATH": str(ROOT)})


# --- anchored runs: data.vol_anchor + data.event_calendar on the synthetic market (the quickstart default) ---


@pytest.fixture(scope="module")
def anchored(tmp_path_factory) -> Path:
    cwd = tmp_path_factory.mktemp("anchored")
    proc = subprocess.run(
        [sys.executable, str(ROOT / "run.py"), "experiment=smoke", "data.vol_anchor=true", "data.event_calendar=true",
         "model.head_shape=fixed", f"data.cache_dir={cwd / 'cache'}", f"hydra.run.dir={cwd / 'run'}"],
        cwd=cwd, env=dict(os.environ), capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return cwd / "run"


def _quantiles(f: pd.DataFrame) -> np.ndarray:
    return f[[f"q_{lv}" for lv in LEVELS]].to_numpy(np.float64)


def test_anchored_run_stores_its_fit(anchored):
    from migt_train.volatility.anchor import read_anchor_fit

    fit = read_anchor_fit(anchored)
    assert fit.releases is not None and fit.releases.shape == (3, 13)
    assert len(fit.garch.profile) == 288 and 0 < fit.garch.persistence < 1


def test_anchored_same_numerics_as_evaluation(anchored):
    """On the run's own (synthetic) market, the forecasts equal the test predictions the run wrote."""
    f = migt_train.load_run(anchored).predict(None, last=None)
    pred = pd.read_parquet(anchored / "predictions.parquet")
    merged = pred.merge(f, on=["timestamp", "horizon"], suffixes=("", "_f"))
    assert len(merged) == len(pred) > 0 and (merged["row"] == merged["row_f"]).all()
    for lv in LEVELS:
        np.testing.assert_allclose(merged[f"q_{lv}"], merged[f"q_{lv}_f"], rtol=1e-5, atol=1e-7)


def test_anchored_latest_forecast_own_market_and_file(anchored, tmp_path, capsys):
    """`predict <run>` on a synthetic run forecasts from its own market's latest bar; the exported bars as a
    file (data.path on a config where it is null) give the same forecast."""
    from migt_train.cli.export import export_bars

    assert predict_main([str(anchored)]) == 0
    assert "4h" in capsys.readouterr().out
    (fdir,) = list((anchored / "forecasts").iterdir())
    own = pd.read_parquet(fdir / "forecasts.parquet")
    q = _quantiles(own)
    assert q.shape == (5, 7) and np.isfinite(q).all() and (np.diff(q, axis=1) >= 0).all()
    assert own["target"].isna().all()

    csv, _ = export_bars(tmp_path / "bars.csv", ["experiment=smoke", f"data.cache_dir={tmp_path / 'cache'}"])
    assert predict_main([str(anchored), "data.source=ohlcv", f"data.path={csv}"]) == 0
    capsys.readouterr()
    newest = sorted((anchored / "forecasts").iterdir())[-1]
    from_file = pd.read_parquet(newest / "forecasts.parquet")
    assert (from_file["timestamp"] == own["timestamp"]).all()
    np.testing.assert_allclose(_quantiles(from_file), q, rtol=1e-5, atol=1e-7)


def test_anchored_file_uses_stored_fit_causally(anchored):
    """Another file is filtered with the stored parameters: changing its later bars leaves the earlier rows'
    anchor untouched (a refit on the file would move every row)."""
    from migt_train.data.build import run_bars

    run = migt_train.load_run(anchored)
    bars = run_bars(run.cfg.data).bars.tail(2000).reset_index(drop=True)
    wild = bars.copy()
    cut = 1500
    base = wild["close"].iloc[cut]
    for c in ("open", "high", "low", "close"):  # the later bars move 3x as much around the same level
        wild.loc[cut:, c] = base * np.exp(3.0 * np.log(wild.loc[cut:, c] / base))
    a, b = run.market(bars, last=None), run.market(wild, last=None)
    assert a.anchor_fit is run.anchor_fit
    early = np.flatnonzero(a.timestamps < np.datetime64(bars["timestamp"].iloc[cut - 48]))
    assert len(early) > 1000
    assert torch_equal(a.vol_anchor[early], b.vol_anchor[early])
    assert not torch_equal(a.vol_anchor, b.vol_anchor)
    fa, fb = run.predict(bars), run.predict(wild)
    assert (fa["q_0.94"] - fa["q_0.05"]).to_numpy().max() < (fb["q_0.94"] - fb["q_0.05"]).to_numpy().max()


def torch_equal(x, y) -> bool:
    return bool((x == y).all())


def test_anchored_run_never_runs_without_its_anchor(anchored, tmp_path, capsys):
    import shutil

    assert predict_main([str(anchored), "data.vol_anchor=false"]) == 2
    assert "model.vol_anchor=true" in capsys.readouterr().err
    assert predict_main([str(anchored), "data.event_calendar=false"]) == 2
    assert "release features" in capsys.readouterr().err
    old = shutil.copytree(anchored, tmp_path / "old", ignore=shutil.ignore_patterns("forecasts", "evaluations"))
    (old / "vol_anchor.json").unlink()  # a run from before the fit was stored
    assert predict_main([str(old)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "vol_anchor.json: not found" in err
    with pytest.raises(MigtError, match="vol_anchor.json: not found"):
        evaluate_checkpoint(old, [])


def test_anchored_evaluate_on_file(anchored, tmp_path):
    """The evaluate CLI on another file of an anchored synthetic run: data.path (null in config.yaml) is a plain
    override, and the file is scored with the stored anchor (no training split to refit on)."""
    from migt_train.cli.export import export_bars

    csv, n = export_bars(tmp_path / "bars.parquet", ["experiment=smoke", f"data.cache_dir={tmp_path / 'cache'}"])
    out, m = evaluate_checkpoint(anchored, ["data.source=ohlcv", f"data.path={csv}"])
    assert m["n_test_samples"] > 0.7 * n
    assert np.isfinite(m["test"]["pinball_loss"])


def test_overrides_of_null_keys():
    from omegaconf import OmegaConf

    from migt_train.config.overrides import apply_overrides, parse_overrides

    cfg = OmegaConf.create({"data": {"path": None, "split": {"by": "fraction"}}})
    apply_overrides(cfg, parse_overrides(["data.path=x.csv"]))
    assert cfg.data.path == "x.csv"
    cfg.data.path = None
    with pytest.raises(MigtError, match=r"\+data.path: the key exists already"):
        apply_overrides(cfg, parse_overrides(["+data.path=x.csv"]))
    with pytest.raises(MigtError, match="data.nokey: no such key"):
        apply_overrides(cfg, parse_overrides(["data.nokey=1"]))
    with pytest.raises(MigtError, match="data.split.nokey.deeper: no such key"):
        apply_overrides(cfg, parse_overrides(["data.split.nokey.deeper=1"]))
    apply_overrides(cfg, parse_overrides(["+data.symbol=NQ", "++data.path=y.csv"]))
    assert cfg.data.symbol == "NQ" and cfg.data.path == "y.csv"
