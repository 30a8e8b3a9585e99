"""`python -m migt_train.benchmark`: real runs of one preset over two tiny synthetic sets, one table."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from migt_train.cli.benchmark import load_sets, main
from migt_train.errors import MigtError

SETS = """
sets:
  - name: plain
    overrides: [data.synthetic.seed=3]
  - name: learnable
    overrides: [data=learnability]
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "sets.yaml"
    path.write_text(text)
    return path


def test_table_from_real_runs(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MIGT_CACHE_DIR", str(tmp_path / "cache"))
    out = tmp_path / "bench"
    args = ["--experiment", "smoke", "--sets", str(_write(tmp_path, SETS)), "--seeds", "5", "--out", str(out)]
    assert main(args) == 0
    table = json.loads((out / "benchmark.json").read_text())
    assert set(table["sets"]) == {"plain", "learnable"} and table["experiment"] == "smoke"
    for name, row in table["sets"].items():
        m = json.loads((out / name / "seed5" / "metrics.json").read_text())
        init = json.loads((out / name / "seed5-initial" / "metrics.json").read_text())
        assert row["model"] == m["test"]["pinball_loss"] and row["initial"] == init["test"]["pinball_loss"]
        assert row["garch_t_tod"] == m["baselines"]["garch_t_tod"]["pinball_loss"]
        assert row["skill_vs_garch"] == pytest.approx(1 - row["model"] / row["garch_t_tod"])
        assert row["skill_vs_garch_lo"] <= row["skill_vs_garch"] <= row["skill_vs_garch_hi"]
        assert row["gap_garch"] == m["baselines"]["garch_t_tod"]["oracle_gap_closed"]
        assert row["best_epoch"] == m["best_epoch"] and row["seconds"] > 0 and row["n_seeds"] == 1
        assert init["best_epoch"] == 0 and init["epochs_run"] == 0
        assert set(row["per_horizon"]) == set(m["horizons"])
    mean = table["mean"]
    assert mean["model"] == pytest.approx((table["sets"]["plain"]["model"] + table["sets"]["learnable"]["model"]) / 2)
    with open(out / "benchmark.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["set"] for r in rows] == ["plain", "learnable", "mean"]
    assert float(rows[1]["initial"]) == table["sets"]["learnable"]["initial"]
    with open(out / "horizons.csv") as f:
        assert len(list(csv.DictReader(f))) == 3 * 5
    md = (out / "benchmark.md").read_text()
    assert "| **mean** |" in md and "| learnable | 4h |" in md
    # the same command again reuses the finished runs and writes the same table
    capsys.readouterr()
    assert main(args) == 0
    assert capsys.readouterr().out.count("reusing") == 4
    again = json.loads((out / "benchmark.json").read_text())["sets"]["plain"]
    assert again["model"] == table["sets"]["plain"]["model"] and again["seconds"] == table["sets"]["plain"]["seconds"]


def test_sets_file_rules(tmp_path):
    assert [s["name"] for s in load_sets("synthetic")] == ["synthetic", "learnability"]
    bad = {
        "sets: []": "non-empty list",
        "sets: [{name: a}, {name: a}]": "unique",
        "sets: [{name: 'a b'}]": "letters, digits",
        "sets: [{name: a, overrides: data=x}]": "list of key=value",
        "sets: [{name: a, data: x}]": "mapping with a name",
    }
    for text, rule in bad.items():
        with pytest.raises(MigtError, match=rule):
            load_sets(str(_write(tmp_path, text)))
    with pytest.raises(MigtError, match="no such file"):
        load_sets(str(tmp_path / "missing.yaml"))


def test_a_bad_set_fails_before_any_run(tmp_path, capsys):
    sets = _write(tmp_path, "sets:\n  - name: ok\n  - name: typo\n    overrides: [trainer.max_epoch=2]\n")
    assert main(["--experiment", "smoke", "--sets", str(sets), "--out", str(tmp_path / "b")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: set typo:") and "max_epoch" in err[0]
    assert not (tmp_path / "b").exists()
