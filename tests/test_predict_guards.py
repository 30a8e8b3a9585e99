"""predict and evaluate refuse what would give a wrong answer without a word: another bar size, horizons or
lookback than the run's, a forecast from a bar still forming, `last` below 1, an output dir that cannot be
written (found before any work), a run still training (said). On a run dir made without training."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import migt_train
from migt_train.errors import MigtError
from migt_train.evaluation.from_run import evaluate_checkpoint
from migt_train.cli.evaluate import main as evaluate_main
from migt_train.cli.predict import main as predict_main

from data_helpers import small_bars, write_bars
from run_helpers import made_run

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    """A 5-minute run on a file (horizons 3..48 bars, 24 h lookback)."""
    tmp = tmp_path_factory.mktemp("guards")
    path = write_bars(small_bars(n_days=4, seed=1), tmp / "bars.csv")
    return made_run(tmp / "run", ["data=ohlcv", f"data.path={path}", f"data.cache_dir={tmp / 'cache'}"])


def _minutes(n: int, end: pd.Timestamp | None = None, start: str = "2024-03-04 00:00") -> pd.DataFrame:
    """n 1-minute bars of a 24-hour market (naive UTC starts), from `start` or ending at `end`."""
    bars = small_bars(n_days=4, bar_minutes=1, seed=2).head(n).copy()
    if end is None:
        bars["timestamp"] = pd.date_range(start, periods=n, freq="1min")
    else:
        bars["timestamp"] = pd.date_range(end=end, periods=n, freq="1min")
    return bars.reset_index(drop=True)


@pytest.mark.parametrize("override, key, value", [
    ("data.bar_minutes=60", "data.bar_minutes", "5"),
    ("data.horizons=[3,6,12]", "data.horizons", "[3, 6, 12, 24, 48]"),
    ("data.lookback_hours=6", "data.lookback_hours", "24"),
    ("data.max_seq_len=96", "data.max_seq_len", "288"),
])
def test_bar_size_horizons_and_lookback_are_the_runs(run, capsys, override, key, value):
    assert predict_main([str(run), override]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and key in err and value in err and "trained" in err
    with pytest.raises(MigtError, match=key):
        migt_train.load_run(run, [override])
    with pytest.raises(MigtError, match=key):
        evaluate_checkpoint(run, [override])
    assert not (run / "forecasts").exists() and not (run / "evaluations").exists()


def test_coarser_file_does_not_suggest_changing_the_bar_size(run, tmp_path):
    bars = small_bars(n_days=4, bar_minutes=15, seed=3)
    with pytest.raises(MigtError) as err:
        migt_train.load_run(run).predict(bars)
    msg = str(err.value)
    assert "15 minutes" in msg and "5-minute" in msg and "set data.bar_minutes" not in msg


def test_latest_complete_bar_by_default(run, caplog):
    """1-minute bars ending 3 minutes into a 5-minute bar: the forecast is from the last complete bar unless the
    partial one is asked for, and then it says so."""
    bars = _minutes(5 * 400 + 3)
    last_full = pd.Timestamp(bars["timestamp"].iloc[-4], tz="UTC").floor("5min")  # the last complete 5-minute bar
    r = migt_train.load_run(run)
    f = r.predict(bars)
    assert (f["timestamp"] == last_full).all() and not f["partial"].any()
    assert np.allclose(f["close"], bars["close"].iloc[-4])
    # the same file cut at the complete bar gives the same forecast
    g = r.predict(bars.iloc[:-3])
    pd.testing.assert_frame_equal(f.drop(columns="row"), g.drop(columns="row"))
    with caplog.at_level(logging.WARNING):
        p = r.predict(bars, partial=True)
    assert (p["timestamp"] == last_full + pd.Timedelta(minutes=5)).all() and p["partial"].all()
    assert np.allclose(p["close"], bars["close"].iloc[-1])
    assert any("3 of its 5 minutes" in rec.getMessage() for rec in caplog.records)
    several = r.predict(bars, last=3, partial=True)
    assert several.groupby("row")["partial"].first().tolist() == [False, False, True]


def test_a_bar_ending_in_the_future_is_partial(run):
    """5-minute bars of a live file: the last one has not ended yet (a vendor's in-progress bar)."""
    now = pd.Timestamp.now(tz="UTC").tz_localize(None).floor("5min")
    bars = small_bars(n_days=4, seed=5).head(400).copy()
    bars["timestamp"] = pd.date_range(end=now, periods=400, freq="5min")
    f = migt_train.load_run(run).predict(bars)
    assert (f["timestamp"] == pd.Timestamp(now - pd.Timedelta(minutes=5), tz="UTC")).all()


@pytest.mark.parametrize("last", [0, -3, 2.5, True])
def test_library_last_is_checked_like_the_cli(run, last):
    with pytest.raises(MigtError, match="last"):
        migt_train.load_run(run).predict(_minutes(5 * 400), last=last)


def test_partial_flag_on_the_cli(run, tmp_path, capsys, caplog):
    path = write_bars(_minutes(5 * 400 + 2), tmp_path / "live.csv")
    out = tmp_path / "out"
    with caplog.at_level(logging.WARNING):
        assert predict_main([str(run), f"data.path={path}", "--partial", "--out", str(out)]) == 0
    f = pd.read_parquet(out / "forecasts.parquet")
    assert f["partial"].all() and "partial" in capsys.readouterr().out
    assert any("2 of its 5 minutes" in r.getMessage() for r in caplog.records)


def test_out_dir_and_nothing_in_the_run(run, tmp_path, capsys):
    before = sorted(p.name for p in run.iterdir())
    path = write_bars(_minutes(5 * 400), tmp_path / "b.csv")
    out = tmp_path / "forecast"
    assert predict_main([str(run), f"data.path={path}", "--out", str(out)]) == 0
    assert (out / "forecasts.parquet").is_file() and (out / "config.yaml").is_file()
    assert sorted(p.name for p in run.iterdir()) == before
    capsys.readouterr()
    assert predict_main([str(run), f"data.path={path}", "--out", str(out)]) == 2  # never over an earlier output
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(out) in err


def test_unwritable_output_is_found_before_any_work(run, tmp_path, capsys):
    """The forecasts dir cannot be made (a file stands where it goes): the error names it, not the missing data
    file that the work would have read first."""
    copy = shutil.copytree(run, tmp_path / "run", ignore=shutil.ignore_patterns("forecasts", "evaluations"))
    (copy / "forecasts").write_text("")
    (copy / "evaluations").write_text("")
    missing = tmp_path / "missing.csv"
    assert predict_main([str(copy), f"data.path={missing}"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "forecasts" in err and "--out" in err and "missing.csv" not in err
    assert evaluate_main([str(copy), f"data.path={missing}"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "evaluations" in err and "--out" in err and "missing.csv" not in err


def _read_only(run_dir: Path, *cmd: str) -> subprocess.CompletedProcess:
    """cmd with run_dir bind-mounted read-only (a user and mount namespace: no privileges needed)."""
    script = f'mount --bind "{run_dir}" "{run_dir}" && mount -o remount,bind,ro "{run_dir}" && exec "$@"'
    return subprocess.run(["unshare", "-rm", "sh", "-c", script, "sh", *cmd], capture_output=True, text=True,
                          timeout=300, env={**os.environ, "PYTHONPATH": str(ROOT)})


@pytest.mark.slow
def test_read_only_run_dir(run, tmp_path):
    if shutil.which("unshare") is None or _read_only(tmp_path, "true").returncode != 0:
        pytest.skip("no unprivileged mount namespace here")
    copy = shutil.copytree(run, tmp_path / "ro", ignore=shutil.ignore_patterns("forecasts", "evaluations"))
    for tool in ("predict", "evaluate"):
        p = _read_only(copy, sys.executable, "-m", f"migt_train.{tool}", str(copy))
        assert p.returncode == 2 and "Traceback" not in p.stderr, p.stderr[-2000:]
        assert p.stderr.count("\n") == 1 and "Read-only file system" in p.stderr and "--out" in p.stderr
    other = write_bars(small_bars(n_days=4, seed=8), tmp_path / "other.csv")  # scored whole: split.by=all
    p = _read_only(copy, sys.executable, "-m", "migt_train.evaluate", str(copy), f"data.path={other}",
                   "--out", str(tmp_path / "ev"))
    assert p.returncode == 0, p.stderr[-2000:]
    assert (tmp_path / "ev" / "metrics.json").is_file()


def test_run_still_training_is_said(tmp_path, caplog):
    path = write_bars(small_bars(n_days=4, seed=1), tmp_path / "bars.csv")
    live = made_run(tmp_path / "live", ["data=ohlcv", f"data.path={path}", f"data.cache_dir={tmp_path / 'c'}"],
                    status="running")
    with caplog.at_level(logging.WARNING):
        migt_train.load_run(live)
    assert any("still training" in r.getMessage() and f"pid {os.getpid()}" in r.getMessage() for r in caplog.records)
