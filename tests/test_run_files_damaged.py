"""A run's files when the disk fails them: a write that finds the disk full names the file; a metrics.json cut
short is shown as broken, not as a completed run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from migt_train.errors import MigtError
from migt_train.utils.io import atomic_write, write_json
from migt_train.cli.summarize import summarize

from run_helpers import made_run


def _fill_disk(_tmp: Path) -> None:
    """What a write on a full disk meets: ENOSPC from the kernel (/dev/full answers every write with it)."""
    with open("/dev/full", "w") as f:
        f.write("x" * 65536)
        f.flush()


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="no /dev/full")
def test_full_disk_names_the_file(tmp_path):
    target = tmp_path / "checkpoints" / "best.pt"
    with pytest.raises(MigtError) as err:
        atomic_write(target, _fill_disk)
    msg = str(err.value)
    assert str(target) in msg and "No space left on device" in msg and "\n" not in msg
    assert not target.exists() and not list(target.parent.glob(".*.tmp"))  # the temp file is gone too
    assert isinstance(err.value, OSError)  # for callers that go on without the file (the feature cache)


def test_truncated_metrics_is_broken_not_completed(tmp_path):
    run = made_run(tmp_path / "runs" / "a", ["data.synthetic.n_days=12"])
    write_json(run / "metrics.json", {"best_val_loss": 0.5, "test": {"pinball_loss": 0.4}})
    (row,) = summarize(tmp_path / "runs")
    assert row["status"] == "completed" and row["test_pinball"] == 0.4
    text = (run / "metrics.json").read_text()
    (run / "metrics.json").write_text(text[: len(text) // 2])
    (row,) = summarize(tmp_path / "runs")
    assert row["status"].startswith("broken") and "metrics.json" in row["status"]
    assert json.loads(json.dumps(row))  # still one printable row
