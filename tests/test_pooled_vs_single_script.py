"""scripts/pooled_vs_single.py: the folds it cuts and the paired table it builds from run directories."""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "pooled_vs_single.py"
LEVELS = [0.1, 0.5, 0.9]


@pytest.fixture(scope="module")
def pvs():
    spec = importlib.util.spec_from_file_location("pooled_vs_single", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _bars(path: Path, start: str, n: int) -> Path:
    stamps = pd.date_range(start, periods=n, freq="1min", tz="UTC")
    pd.DataFrame({"timestamp": stamps.strftime("%Y-%m-%dT%H:%M:%S+00:00"), "open": 1.0, "high": 1.0, "low": 1.0,
                  "close": 1.0, "volume": 1}).to_csv(path, index=False)
    return path


def test_folds_keep_the_bars_before_each_end(pvs, tmp_path, capsys):
    files = {"A": _bars(tmp_path / "a.csv", "2026-02-10 22:50", 20), "B": _bars(tmp_path / "b.csv", "2026-02-10 22:55", 20)}
    assert pvs._cut(files, "none", tmp_path / "none") == files
    cut = pvs._cut(files, "2026-02-10T23:00Z", tmp_path / "fold")
    a, b = (pd.read_csv(cut[n]) for n in "AB")
    assert len(a) == 10 and len(b) == 5 and a["timestamp"].iloc[-1] == "2026-02-10T22:59:00+00:00"
    assert list(a.columns) == ["timestamp", "open", "high", "low", "close", "volume"]
    bad = tmp_path / "bad.csv"
    pd.read_csv(files["A"]).assign(timestamp=lambda f: f["timestamp"].where(f.index != 3, "not a time")).to_csv(bad, index=False)
    with pytest.raises(SystemExit) as stop:
        pvs._cut({"A": bad}, "2026-02-10T23:00Z", tmp_path / "bad")
    assert stop.value.code == 2 and "bad.csv: row 5 has a timestamp that does not parse" in capsys.readouterr().err


def _run(folder: Path, metrics: dict, predictions: pd.DataFrame) -> None:
    folder.mkdir(parents=True)
    (folder / "metrics.json").write_text(json.dumps(metrics))
    predictions.to_parquet(folder / "predictions.parquet")


def _loss(frame: pd.DataFrame) -> float:
    e = frame["target"].to_numpy()[:, None] - frame[[f"q_{lv}" for lv in LEVELS]].to_numpy()
    return float(np.maximum(np.array(LEVELS) * e, (np.array(LEVELS) - 1) * e).mean())


def test_the_table_pairs_each_instruments_losses_by_timestamp(pvs, tmp_path):
    rng = np.random.default_rng(0)
    stamps = pd.date_range("2026-02-24", periods=60, freq="5min", tz="UTC")
    frames, pooled = {}, []
    for k, name in enumerate(["NQ", "ES"]):
        y = rng.standard_normal((60, 2)) * 1e-3
        base = pd.DataFrame({"timestamp": np.repeat(stamps, 2), "horizon": ["15m", "30m"] * 60, "target": y.ravel()})
        single = base.assign(**{f"q_{lv}": (lv - 0.5) * 3e-3 for lv in LEVELS})
        wider = base.assign(**{f"q_{lv}": (lv - 0.5) * (3e-3 + 1e-3 * (k + 1)) for lv in LEVELS})
        frames[name] = (single, wider)
        pooled.append(wider.assign(instrument=name))
        # as a file's run writes it: no oracle (null), so the table has no oracle column
        _run(tmp_path / name, {"test": {"pinball_loss": _loss(single)}, "oracle": None}, single)
    per = {n: {"test": {"pinball_loss": _loss(w)}} for n, (_, w) in frames.items()}
    _run(tmp_path / "pooled", {"levels": LEVELS, "horizon_bars": [3, 6], "per_instrument": per}, pd.concat(pooled))
    rows, p, s, diffs = pvs.compare(tmp_path, ["NQ", "ES"])
    for row, (name, (single, wider)) in zip(rows, frames.items()):
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert cells[0] == name and float(cells[1]) == pytest.approx(_loss(single) * 1e4, abs=1e-4)
        assert float(cells[2]) == pytest.approx(_loss(wider) * 1e4, abs=1e-4)
        assert float(cells[4].split()[0]) == pytest.approx((_loss(wider) - _loss(single)) * 1e4, abs=1e-4)
    assert p == pytest.approx(np.mean([_loss(w) for _, w in frames.values()]) * 1e4)
    assert s == pytest.approx(np.mean([_loss(x) for x, _ in frames.values()]) * 1e4)
    assert rows[-1].startswith("| mean |")
    for name, (single, wider) in frames.items():
        assert diffs[name].mean() == pytest.approx(_loss(wider) - _loss(single))
    assert diffs["mean"].to_numpy() == pytest.approx(((diffs["NQ"] + diffs["ES"]) / 2).to_numpy())


def test_over_folds_pools_the_folds_test_rows_end_to_end(pvs):
    first = {"NQ": pd.Series([1.0, 3.0]), "mean": pd.Series([2.0, 2.0])}
    second = {"NQ": pd.Series([-2.0, 0.0, 2.0, 6.0]), "mean": pd.Series([0.5, 0.5, 0.5, 0.5])}
    rows = pvs.over_folds([first, second], block=1)
    assert [r.split("|")[1].strip() for r in rows] == ["NQ", "mean"]
    # the mean over all six rows, not the mean of the two folds' means (2.0 and 1.5)
    assert float(rows[0].split("|")[2].split()[0]) == pytest.approx(10.0 / 6 * 1e4)
    assert float(rows[1].split("|")[2].split()[0]) == pytest.approx(6.0 / 6 * 1e4)


def test_a_family_table_shows_each_members_oracle_gap_closed(pvs):
    assert pvs._gaps({"oracle_gap_closed": 0.98}, {"oracle_gap_closed": 0.961}) == " | 0.961 -> 0.980"
    assert pvs._gaps({}, {"oracle_gap_closed": 0.961}) == ""  # files: no oracle


def _script(*args: str, cwd: Path):
    return subprocess.run([sys.executable, str(SCRIPT), *args], cwd=cwd, capture_output=True, text=True,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})


def test_the_family_mode_refuses_one_market_and_files(tmp_path):
    done = _script("--family", "1", "--out", str(tmp_path), cwd=tmp_path)
    assert done.returncode == 2 and "--family 1: a pooled run needs at least two markets" in done.stderr
    done = _script("--family", "2", "--ends", "none", "--out", str(tmp_path), cwd=tmp_path)
    assert done.returncode == 2 and "--family generates its markets: --files and --ends are for files" in done.stderr
    assert not (tmp_path / "runs").exists()


@pytest.mark.slow
def test_the_family_mode_runs_the_pooled_family_against_each_member_alone(tmp_path):
    done = _script("--family", "2", "--data-seeds", "7", "--seeds", "42", "--out", str(tmp_path),
                   "experiment=smoke", "data.synthetic.oracle_paths=50", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    run = tmp_path / "runs" / "family_seed7" / "seed42"
    pooled = yaml.safe_load((run / "pooled" / "config.yaml").read_text())
    assert pooled["data"]["synthetic"]["instruments"] == 2 and pooled["data"]["cross_asset"] is True
    assert pooled["data"]["synthetic"]["seed"] == 7 and pooled["data"]["synthetic"]["member"] is None
    for j in (0, 1):
        single = yaml.safe_load((run / f"syn{j}" / "config.yaml").read_text())
        assert single["data"]["synthetic"]["member"] == j and single["data"]["cross_asset"] is False
    table = (tmp_path / "pooled_vs_single.md").read_text()
    assert "### family draw data.synthetic.seed=7, seed 42" in table and "gap closed, single -> pooled" in table
    per = json.loads((run / "pooled" / "metrics.json").read_text())["per_instrument"]
    assert "| oracle - single [95% CI] |" in table
    for j in (0, 1):
        alone = json.loads((run / f"syn{j}" / "metrics.json").read_text())
        cells = next(line for line in table.splitlines() if line.startswith(f"| syn{j} |")).strip(" |").split(" | ")
        assert cells[5] == f"{alone['oracle_gap_closed']:.3f} -> {per[f'syn{j}']['oracle_gap_closed']:.3f}"
        # the oracle's gain over the single run, per origin: its mean is the two test pinballs' difference
        ceiling = float(cells[6].split(" [")[0])
        assert ceiling == pytest.approx((alone["oracle"]["pinball_loss"] - alone["test"]["pinball_loss"]) * 1e4, abs=2e-4)
        assert ceiling < 0
