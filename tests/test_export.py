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
