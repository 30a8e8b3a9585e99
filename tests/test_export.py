"""`python -m migt_train.export`: the configured bars round-trip through CSV and parquet."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from migt_train.data import load_market
from migt_train.cli.export import main
from migt_train.config.compose import compose_config

ROOT = Path(__file__).resolve().parents[1]


def _small(tmp: Path) -> list[str]:
    return ["data.synthetic.n_days=12", f"data.cache_dir={tmp / 'cache'}"]


@pytest.mark.parametrize("suffix", ["csv", "parquet"])
def test_export_round_trips_through_ohlcv(tmp_path, suffix, capsys):
    out = tmp_path / f"bars.{suffix}"
    assert main([str(out), *_small(tmp_path)]) == 0
    assert f"{out}: " in capsys.readouterr().out
    synthetic = load_market(compose_config(_small(tmp_path)).data)
    back = load_market(compose_config([*_small(tmp_path), "data=ohlcv", f"data.path={out}"]).data)
    assert back.source == "ohlcv" and synthetic.source == "synthetic"
    assert np.array_equal(back.timestamps, synthetic.timestamps)
    assert torch.equal(back.bar_in_day, synthetic.bar_in_day)
    torch.testing.assert_close(back.features, synthetic.features, rtol=1e-6, atol=0)
    torch.testing.assert_close(back.targets, synthetic.targets, rtol=1e-6, atol=0, equal_nan=True)
    assert all(torch.equal(back.splits[k], synthetic.splits[k]) for k in synthetic.splits)
    frame = pd.read_csv(out) if suffix == "csv" else pd.read_parquet(out)
    assert list(frame.columns) == ["timestamp", "open", "high", "low", "close", "volume"]
    if suffix == "csv":
        assert frame["timestamp"].iloc[0] == "2024-01-01T23:00:00+00:00"  # 18:00 New York, the first session
    else:
        assert str(frame["timestamp"].dt.tz) == "UTC"
    assert not list(tmp_path.glob(".bars.*.tmp"))  # written via a temp file, renamed


def test_export_of_a_user_file_writes_its_bars(tmp_path):
    first = tmp_path / "first.parquet"
    assert main([str(first), *_small(tmp_path)]) == 0
    again = tmp_path / "again.csv"
    assert main([str(again), *_small(tmp_path), "data=ohlcv", f"data.path={first}"]) == 0
    a, b = pd.read_parquet(first), pd.read_csv(again)
    assert len(a) == len(b) and np.array_equal(a["close"].to_numpy(), b["close"].to_numpy())


@pytest.mark.parametrize(
    "args, message",
    [
        (["bars.txt"], "unknown file type '.txt'"),
        (["bars.csv", "data.nope=1"], "overrides data.nope=1"),
        (["bars.csv", "data.bar_minutes=7"], "data.bar_minutes"),
        (["bars.csv", "data=ohlcv", "data.path=missing.csv"], "missing.csv: file not found"),
    ],
)
def test_export_errors_are_one_line_exit_2(tmp_path, monkeypatch, capsys, args, message):
    monkeypatch.chdir(tmp_path)
    assert main([*args, f"data.cache_dir={tmp_path}"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and message in err
    assert not list(tmp_path.glob("bars.*"))


def test_export_cli_process_exit_code(tmp_path):
    p = subprocess.run([sys.executable, "-m", "migt_train.export", str(tmp_path / "bars.json")],
                       cwd=tmp_path, capture_output=True, text=True, timeout=120,
                       env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert p.returncode == 2 and "Traceback" not in p.stderr
    assert p.stderr.count("\n") == 1 and "unknown file type '.json'" in p.stderr


# ---- the bars a run reads: timezone, bar-end labels, bar size, rolls, one contract, the session -------------

def _minute_bars(n_days: int = 8):
    from migt_train.data.synthetic import SyntheticConfig, generate

    return generate(SyntheticConfig(seed=3, n_days=n_days), 1, "America/New_York", 18 * 60)[
        ["timestamp", "open", "high", "low", "close", "volume"]].copy()


def _same_market(a, b) -> None:
    np.testing.assert_array_equal(a.timestamps, b.timestamps)
    assert torch.equal(a.features, b.features)
    assert torch.equal(a.targets.nan_to_num(), b.targets.nan_to_num())
    assert all(torch.equal(a.splits[k], b.splits[k]) for k in a.splits)


def test_export_writes_the_bars_training_reads(tmp_path):
    """Naive Berlin wall-clock times labelled at the bar end, 1-minute bars, a session filter: the exported file
    holds 5-minute bars labelled by their UTC start, and reads back (plain settings) as the same market."""
    minute = _minute_bars()
    ends = minute.copy()
    ends["timestamp"] = (pd.DatetimeIndex(minute["timestamp"]) + pd.Timedelta(minutes=1)).tz_localize("UTC") \
        .tz_convert("Europe/Berlin").tz_localize(None).strftime("%Y-%m-%d %H:%M:%S")
    src = tmp_path / "fesx.csv"
    ends.to_csv(src, index=False)
    settings = ["data=ohlcv", f"data.path={src}", "data.timezone=Europe/Berlin", "data.timestamp_label=end",
                "data.session_end=16:00", f"data.cache_dir={tmp_path / 'cache'}"]
    out = tmp_path / "bars.csv"
    assert main([str(out), *settings]) == 0
    frame = pd.read_csv(out)
    first = pd.Timestamp(minute["timestamp"].iloc[0], tz="UTC")  # 18:00 New York: a 5-minute bucket start
    assert frame["timestamp"].iloc[0] == first.isoformat()
    ts = pd.to_datetime(frame["timestamp"])
    assert ((ts.dt.minute % 5) == 0).all() and ts.is_monotonic_increasing
    local = ts.dt.tz_convert("America/New_York")
    assert not ((local.dt.hour >= 16) & (local.dt.hour < 18)).any()  # data.session_end applied
    original = load_market(compose_config([*settings, "data.lookback_hours=4", "data.max_seq_len=48"]).data)
    back = load_market(compose_config(["data=ohlcv", f"data.path={out}", f"data.cache_dir={tmp_path / 'cache'}",
                                       "data.session_end=16:00", "data.lookback_hours=4", "data.max_seq_len=48"]).data)
    _same_market(original, back)


def test_export_of_several_contracts_is_the_front_series(tmp_path):
    """Two contracts and a spread: the export is the front-contract series (no duplicate times, no spread
    prices) with the contract of each bar, and reads back with the same roll and the same samples."""
    from test_data_sources import _databento_frame

    frame, first_m4_day = _databento_frame(_minute_bars(14))
    src = tmp_path / "glbx.csv"
    frame.to_csv(src, index=False)
    settings = ["data=ohlcv", f"data.path={src}", f"data.cache_dir={tmp_path / 'cache'}"]
    out = tmp_path / "front.parquet"
    assert main([str(out), *settings]) == 0
    got = pd.read_parquet(out)
    assert got["timestamp"].is_unique and (got[["open", "high", "low", "close"]] > 0).all().all()
    assert list(got.columns) == ["timestamp", "open", "high", "low", "close", "volume", "symbol"]
    assert got["symbol"].iloc[0] == "NQH4" and got["symbol"].iloc[-1] == "NQM4"
    original = load_market(compose_config(settings).data)
    back = load_market(compose_config(["data=ohlcv", f"data.path={out}", f"data.cache_dir={tmp_path / 'cache'}"]).data)
    assert back.rolls["rolls"] == original.rolls["rolls"]
    _same_market(original, back)
    one = tmp_path / "m4.csv"
    assert main([str(one), *settings, "data.symbol=NQM4"]) == 0
    m4 = pd.read_csv(one)
    assert (m4["symbol"] == "NQM4").all() and len(m4) > len(got) // 2


def test_export_refuses_to_overwrite(tmp_path, capsys):
    out = tmp_path / "bars.csv"
    out.write_text("precious\n")
    assert main([str(out), *_small(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(out) in err and "--force" in err
    assert out.read_text() == "precious\n"
    assert main([str(out), *_small(tmp_path), "--force"]) == 0
    assert pd.read_csv(out).shape[1] == 6
