"""Kill a real training process (SIGKILL mid-epoch, SIGTERM) and check it resumes to the same result."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from migt_train.training import load_checkpoint
from training_helpers import make_trainer, val_losses

HELPERS = Path(__file__).with_name("training_helpers.py")
ROOT = Path(__file__).resolve().parents[1]
EPOCHS = 4



def _start(run_dir: Path, slow: float) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(HELPERS.parent)])}
    return subprocess.Popen([sys.executable, str(HELPERS), str(run_dir), str(EPOCHS), str(slow)],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for(path: Path, proc: subprocess.Popen, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.is_file():
        if proc.poll() is not None:
            raise AssertionError(f"training exited early: {proc.communicate()}")
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError("no checkpoint appeared")
        time.sleep(0.01)


def _uninterrupted(tmp_path: Path):
    return make_trainer(tmp_path / "full", max_epochs=EPOCHS, early_stopping_patience=0).fit()


def test_sigkill_mid_epoch_resumes_to_the_same_result(tmp_path):
    run = tmp_path / "run"
    last = run / "checkpoints" / "last.pt"
    proc = _start(run, slow=0.03)
    _wait_for(last, proc)
    time.sleep(0.12)  # a few batches into epoch 2
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    ckpt = load_checkpoint(last)  # intact despite the kill: writes are atomic
    assert 1 <= ckpt["epoch"] < EPOCHS and ckpt["mid_epoch"] is None
    assert not list(run.rglob("*.tmp"))

    resumed = make_trainer(run, max_epochs=EPOCHS, resume="auto", early_stopping_patience=0).fit()
    full = _uninterrupted(tmp_path)
    assert val_losses(resumed) == pytest.approx(val_losses(full), abs=1e-6)
    assert resumed.best_epoch == full.best_epoch


def test_sigterm_exits_nonzero_with_resume_hint_and_resumes(tmp_path):
    run = tmp_path / "run"
    last = run / "checkpoints" / "last.pt"
    proc = _start(run, slow=0.03)
    _wait_for(last, proc)
    time.sleep(0.12)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 2, err
    assert "interrupted by SIGTERM" in err and "trainer.resume=auto" in err and str(last) in err
    ckpt = load_checkpoint(last)
    assert ckpt["epoch"] < EPOCHS

    resumed = make_trainer(run, max_epochs=EPOCHS, resume="auto", early_stopping_patience=0).fit()
    full = _uninterrupted(tmp_path)
    assert val_losses(resumed) == pytest.approx(val_losses(full), abs=1e-6)
    assert [r["train_loss"] for r in resumed.history] == pytest.approx([r["train_loss"] for r in full.history], abs=1e-6)
