"""`python -m migt_train.summarize`: runs grouped by data set before ranking, the kept epoch shown, and the
loss-curve plot naming the same kept epoch as metrics.json."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from migt_train.cli.summarize import format_table, summarize
from migt_train.evaluation.plots import kept_epoch_title


def fake_run(root: Path, name: str, data: dict, best_val_loss: float, best_epoch: int) -> Path:
    """A finished run's record as summarize reads it (config.yaml, .hydra/, metrics.json, history.json)."""
    d = root / name
    (d / ".hydra").mkdir(parents=True)
    (d / "config.yaml").write_text(yaml.safe_dump({"data": data, "tag": None}, sort_keys=False))  # as a run writes it
    history = [{"epoch": e, "val_loss": best_val_loss + (0.0 if e == best_epoch else 0.01),
                "val_metrics": {"pinball_loss": 2.0 + e}} for e in range(0, 3)]
    (d / "history.json").write_text(json.dumps({"epochs": history}))
    (d / "metrics.json").write_text(json.dumps({"best_val_loss": best_val_loss, "best_epoch": best_epoch,
                                                "epochs_run": 2, "test": {"pinball_loss": 1.0}}))
    return d


SYN = {"source": "synthetic", "path": None, "bar_minutes": 5, "horizons": [3, 6], "vol_anchor": False,
       "synthetic": {"seed": 7, "n_days": 600}}


def test_runs_are_grouped_by_data_set_then_ranked_by_val_loss(tmp_path: Path) -> None:
    fake_run(tmp_path, "syn_a", SYN, 0.30, 0)
    fake_run(tmp_path, "syn_anchor", {**SYN, "vol_anchor": True, "cache_dir": "/elsewhere"}, 0.20, 2)  # same data
    fake_run(tmp_path, "file", {**SYN, "source": "ohlcv", "path": "/data/nq.csv", "synthetic": None}, 0.10, 1)
    fake_run(tmp_path, "syn_h", {**SYN, "horizons": [1, 2]}, 0.05, 1)  # other targets: another data set
    rows = summarize(tmp_path)
    runs = [r["run"] for r in rows]
    assert runs[0] == "file" and rows[0]["data"] == "nq.csv 5m"
    # the two runs on one data set sit together, ranked by val loss, whatever the other group's val loss
    i = runs.index("syn_anchor")
    assert runs[i + 1] == "syn_a" and rows[i]["data"] == rows[i + 1]["data"]
    other = rows[runs.index("syn_h")]["data"]
    assert other != rows[i]["data"]  # the same label, told apart by the digest
    assert rows[i]["data"].startswith("synthetic 600d seed 7 5m #") and other.startswith("synthetic 600d seed 7 5m #")
    assert {r["run"]: r["best_epoch"] for r in rows} == {"file": 1, "syn_anchor": 2, "syn_a": 0, "syn_h": 1}
    # the kept epoch's val pinball (log-return units, beside test_pinball), not the lowest one
    assert {r["run"]: r["val_pinball"] for r in rows} == {"file": 3.0, "syn_anchor": 4.0, "syn_a": 2.0, "syn_h": 3.0}
    table = format_table(rows).splitlines()
    assert table[0].split()[:7] == ["data", "run", "tag", "status", "epochs", "best_epoch", "best_val_loss"]


def test_a_run_without_metrics_shows_its_history_and_counts_trained_epochs(tmp_path: Path) -> None:
    d = fake_run(tmp_path, "running", SYN, 0.3, 1)
    (d / "metrics.json").unlink()
    (row,) = summarize(tmp_path)
    assert row["best_epoch"] == 1 and row["epochs"] == 2  # epoch 0 (initial weights) is not a trained epoch


def test_loss_curve_title_names_the_kept_epoch_not_the_lowest_val_loss() -> None:
    history = [{"epoch": 0, "val_loss": 0.115279}, {"epoch": 1, "val_loss": 0.115264}, {"epoch": 3, "val_loss": 0.11522}]
    epoch, val, title = kept_epoch_title(history, 0, 0.11527931169302956)
    assert (epoch, val) == (0, 0.11527931169302956)
    assert title == "Loss curves (kept in best.pt: the initial weights (epoch 0), val loss 0.115279)"
    assert kept_epoch_title(history, None, None)[:2] == (3, 0.11522)  # an older run: its lowest val loss
    assert kept_epoch_title([], None, None) is None


def test_pooled_runs_are_labelled_by_their_instruments(tmp_path: Path) -> None:
    files = {**SYN, "source": "ohlcv", "synthetic": None}
    fake_run(tmp_path, "map", {**files, "path": {"NQ": "/d/nq.csv", "ES": "/d/es.csv"}}, 0.2, 1)
    fake_run(tmp_path, "map_cross", {**files, "path": {"NQ": "/d/nq.csv", "ES": "/d/es.csv"}, "cross_asset": True}, 0.1, 1)
    fake_run(tmp_path, "list", {**files, "path": ["/d/nq.csv", "/d/es.csv"]}, 0.3, 1)
    fake_run(tmp_path, "family", {**SYN, "synthetic": {"seed": 7, "n_days": 120, "instruments": 4, "member": None}}, 0.3, 1)
    fake_run(tmp_path, "member", {**SYN, "synthetic": {"seed": 7, "n_days": 120, "instruments": 4, "member": 2}}, 0.3, 1)
    data = {r["run"]: r["data"] for r in summarize(tmp_path)}
    # the cross inputs change the inputs, not the rows scored: one data set with the run without them
    assert data["map"] == data["map_cross"] == "NQ+ES 5m" and data["list"] == "nq+es 5m"
    assert data["family"] == "synthetic 120d seed 7 x4 5m" and data["member"] == "synthetic 120d seed 7 syn2 5m"
