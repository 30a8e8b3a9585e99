import functools
import json
import logging
import os
import signal

import pytest
import torch

from migt_train.errors import MigtError
from migt_train.run.stops import RunStopped
from migt_train.training import ConstantScheduler, load_checkpoint
from migt_train.training.checkpoint import REQUIRED_KEYS, TOPK_PATTERN
from toys import LEVELS, ToyQuantileModel
from training_helpers import make_market, make_trainer, val_losses


def _params(model):
    return torch.cat([p.detach().flatten() for p in model.parameters()])


def test_fit_writes_history_checkpoints_and_scaling(tmp_path):
    data = make_market()
    t = make_trainer(tmp_path, data=data, max_epochs=2)
    res = t.fit()
    assert res.epochs_run == 2 and not res.stopped_early and res.nonfinite_steps == 0
    hist = json.loads((tmp_path / "history.json").read_text())["epochs"]
    assert [r["epoch"] for r in hist] == [1, 2]
    keys = {"epoch", "global_step", "lr", "train_loss", "val_loss", "val_metrics", "seconds",
            "samples_per_second", "train_samples", "nonfinite_steps"}
    assert all(keys <= set(r) for r in hist)
    assert hist[-1]["val_metrics"]["per_horizon"].keys() == set(data.horizon_names)
    assert hist[0]["train_samples"] == len(data.splits["train"])
    assert hist[0]["global_step"] == 5  # ceil(276 / 32) = 9 batches, groups of 2
    assert res.best_val_loss == min(val_losses(res))
    ckpt = load_checkpoint(tmp_path / "checkpoints" / "last.pt")
    assert set(REQUIRED_KEYS) <= set(ckpt)
    assert ckpt["epoch"] == 2 and ckpt["levels"] == LEVELS and ckpt["feature_names"] == data.feature_names
    assert ckpt["config"] == {"test": True, "seed": 0}
    mean, std = data.target_stats("train")
    assert torch.allclose(ckpt["target_scaling"]["mean"], mean) and torch.allclose(t.model.target_std, std)
    assert {"python", "numpy", "torch"} <= set(ckpt["rng"])
    # atomic writes leave no temporary files behind
    assert not [p for p in tmp_path.rglob(".*") if p.is_file()]


def test_top_k_files_follow_the_best_epochs(tmp_path):
    res = make_trainer(tmp_path, max_epochs=5, save_top_k=2, lr=3e-2).fit()
    files = sorted(p.name for p in (tmp_path / "checkpoints").iterdir() if TOPK_PATTERN.match(p.name))
    best2 = sorted(res.history, key=lambda r: r["val_loss"])[:2]
    assert files == sorted(f"epoch={r['epoch']:03d}-val_loss={r['val_loss']:.6f}.pt" for r in best2)
    for name in files:
        assert load_checkpoint(tmp_path / "checkpoints" / name)["epoch"] == int(name[6:9])
    assert load_checkpoint(tmp_path / "checkpoints" / "best.pt")["epoch"] == res.best_epoch
    assert res.best_checkpoint == tmp_path / "checkpoints" / "best.pt"


def test_no_top_k_when_zero(tmp_path):
    make_trainer(tmp_path, max_epochs=2, save_top_k=0).fit()
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["best.pt", "last.pt"]


def test_gradient_accumulation_equals_larger_batch(tmp_path):
    def run(d, batch, accum):
        t = make_trainer(tmp_path / d, max_epochs=2, batch_size=batch, gradient_accumulation_steps=accum,
                         dropout=0.0, optimizer=functools.partial(torch.optim.SGD, lr=0.05),
                         scheduler=ConstantScheduler)
        return t, t.fit()

    a, ra = run("a", 8, 2)
    b, rb = run("b", 16, 1)
    assert torch.allclose(_params(a.model), _params(b.model), atol=1e-6)
    assert ra.history[-1]["global_step"] == rb.history[-1]["global_step"] == 36  # ceil(276/16) * 2
    assert val_losses(ra) == pytest.approx(val_losses(rb), abs=1e-6)


def test_limit_train_batches(tmp_path):
    res = make_trainer(tmp_path, max_epochs=1, batch_size=16, limit_train_batches=3).fit()
    assert res.history[0]["train_samples"] == 48 and res.history[0]["global_step"] == 2


def test_resume_equals_uninterrupted(tmp_path):
    full = make_trainer(tmp_path / "full", max_epochs=6).fit()
    make_trainer(tmp_path / "split", max_epochs=3).fit()
    resumed_t = make_trainer(tmp_path / "split", max_epochs=6, resume="auto", seed=0)
    resumed = resumed_t.fit()
    assert len(resumed.history) == 6
    assert val_losses(resumed) == pytest.approx(val_losses(full), abs=1e-6)
    assert [r["lr"] for r in resumed.history] == pytest.approx([r["lr"] for r in full.history])
    assert resumed.best_epoch == full.best_epoch


def test_resume_auto_without_checkpoint_starts_fresh(tmp_path, caplog):
    with caplog.at_level(logging.INFO):
        res = make_trainer(tmp_path, max_epochs=1, resume="auto").fit()
    assert res.epochs_run == 1 and "starting fresh" in caplog.text


def test_resume_finished_run_returns_immediately(tmp_path):
    make_trainer(tmp_path, max_epochs=2).fit()
    res = make_trainer(tmp_path, max_epochs=2, resume=str(tmp_path / "checkpoints" / "last.pt")).fit()
    assert res.epochs_run == 2 and len(res.history) == 2


def test_corrupt_or_incompatible_checkpoint_is_one_error(tmp_path):
    make_trainer(tmp_path / "ok", max_epochs=1).fit()
    last = tmp_path / "ok" / "checkpoints" / "last.pt"
    bad = tmp_path / "bad.pt"
    bad.write_bytes(last.read_bytes()[:1000])  # truncated
    with pytest.raises(MigtError, match="bad.pt"):
        make_trainer(tmp_path / "x", resume=str(bad)).fit()
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(MigtError, match="bad.pt: not a readable checkpoint"):
        make_trainer(tmp_path / "x", resume=str(bad)).fit()
    torch.save({"model": {}}, bad)
    with pytest.raises(MigtError, match="bad.pt: not a migt-train checkpoint"):
        make_trainer(tmp_path / "x", resume=str(bad)).fit()
    with pytest.raises(MigtError, match="missing.pt: checkpoint not found"):
        make_trainer(tmp_path / "x", resume=str(tmp_path / "missing.pt")).fit()
    # a model of another shape -> incompatible, naming the file
    other = ToyQuantileModel(hidden=8)
    with pytest.raises(MigtError, match="last.pt: incompatible checkpoint"):
        make_trainer(tmp_path / "x", model=other, resume=str(last)).fit()


def test_failed_write_keeps_previous_checkpoint(tmp_path, monkeypatch):
    make_trainer(tmp_path, max_epochs=1).fit()
    before = (tmp_path / "checkpoints" / "last.pt").read_bytes()
    import migt_train.utils.io as io

    real_save = torch.save

    def failing_save(obj, f, *a, **k):
        f.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(io.torch, "save", failing_save)
    with pytest.raises(OSError):
        make_trainer(tmp_path, max_epochs=2, resume="auto").fit()
    monkeypatch.setattr(io.torch, "save", real_save)
    assert (tmp_path / "checkpoints" / "last.pt").read_bytes() == before
    assert not [p for p in tmp_path.rglob("*.tmp")]


class NaNModel(ToyQuantileModel):
    """Returns NaN on chosen training forward calls (all of them when nan_calls is None)."""

    def __init__(self, nan_calls=None, **kw):
        super().__init__(**kw)
        self.nan_calls, self.calls = nan_calls, 0

    def forward(self, features, mask, time):
        out = super().forward(features, mask, time)
        if self.training:
            self.calls += 1
            if self.nan_calls is None or self.calls in self.nan_calls:
                out = {k: v * float("nan") for k, v in out.items()}
        return out


def test_nonfinite_step_is_skipped_and_counted(tmp_path):
    torch.manual_seed(0)
    model = NaNModel(nan_calls={3, 4, 12}, dropout=0.0)  # calls 3-4 = step 2; call 12 = step 6 (epoch 2)
    res = make_trainer(tmp_path, model=model, max_epochs=2).fit()
    assert [r["nonfinite_steps"] for r in res.history] == [1, 1] and res.nonfinite_steps == 2
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert all(r["train_loss"] == r["train_loss"] for r in res.history)  # not NaN: NaN batches left out


def test_consecutive_nonfinite_steps_stop_with_good_checkpoint(tmp_path):
    make_trainer(tmp_path, max_epochs=1).fit()
    last = tmp_path / "checkpoints" / "last.pt"
    before = last.read_bytes()
    torch.manual_seed(0)
    model = NaNModel(nan_calls=None)
    t = make_trainer(tmp_path, model=model, max_epochs=3, resume="auto", max_nonfinite_steps=3)
    with pytest.raises(MigtError, match="3 optimizer steps in a row"):
        t.fit()
    assert last.read_bytes() == before
    good = load_checkpoint(last)["model"]
    assert all(torch.equal(good[k], v) for k, v in model.state_dict().items())  # no update applied


def test_early_stopping(tmp_path):
    res = make_trainer(tmp_path, max_epochs=10, early_stopping_patience=2, early_stopping_min_delta=1e9).fit()
    assert res.stopped_early and res.epochs_run == 3 and res.best_epoch == 1


def test_bad_trainer_options_rejected(tmp_path):
    with pytest.raises(MigtError, match="'trainer.batch_sizes': unknown option"):
        make_trainer(tmp_path, batch_sizes=3)
    with pytest.raises(MigtError, match="trainer.batch_size"):
        make_trainer(tmp_path, batch_size=0)
    with pytest.raises(MigtError, match="trainer.amp_dtype"):
        make_trainer(tmp_path, amp_dtype="fp8")


class SignalModel(ToyQuantileModel):
    """Sends itself SIGTERM on one training forward call: a real signal, delivered mid-epoch."""

    def __init__(self, at_call: int, **kw):
        super().__init__(**kw)
        self.at_call, self.calls = at_call, 0

    def forward(self, features, mask, time):
        if self.training:
            self.calls += 1
            if self.calls == self.at_call:
                os.kill(os.getpid(), signal.SIGTERM)
        return super().forward(features, mask, time)


def test_sigterm_stops_at_step_boundary_and_resumes_exactly(tmp_path):
    full = make_trainer(tmp_path / "full", max_epochs=3).fit()
    torch.manual_seed(0)
    model = SignalModel(at_call=12, dropout=0.1)  # epoch 2 (calls 10-18), first micro-batch of step 7
    t = make_trainer(tmp_path / "run", model=model, max_epochs=3)
    with pytest.raises(RunStopped, match="trainer.resume=auto") as exc:
        t.fit()
    assert exc.value.signum == signal.SIGTERM
    ckpt = load_checkpoint(tmp_path / "run" / "checkpoints" / "last.pt")
    assert ckpt["epoch"] == 1 and ckpt["global_step"] == 7
    assert ckpt["mid_epoch"]["epoch"] == 2 and ckpt["mid_epoch"]["position"] == 4
    assert len(json.loads((tmp_path / "run" / "history.json").read_text())["epochs"]) == 1
    assert signal.getsignal(signal.SIGTERM) is not None  # handlers restored
    resumed = make_trainer(tmp_path / "run", max_epochs=3, resume="auto").fit()
    assert val_losses(resumed) == pytest.approx(val_losses(full), abs=1e-6)
    assert [r["train_loss"] for r in resumed.history] == pytest.approx([r["train_loss"] for r in full.history], abs=1e-6)


def test_validate_before_training_keeps_the_initial_weights_when_training_hurts(tmp_path):
    """Epoch 0 is a candidate for best.pt: with a harmful (not yet divergent: < 100x, see divergence.py)
    learning rate the initial weights win."""
    data = make_market()
    torch.manual_seed(0)
    model = ToyQuantileModel(n_variables=data.n_features)
    init = _params(model).clone()
    res = make_trainer(tmp_path, data=data, model=model, max_epochs=2, lr=1.3, validate_before_training=True).fit()
    assert res.best_epoch == 0 and [r["epoch"] for r in res.history] == [0, 1, 2]
    initial = res.history[0]  # the initial weights' record: validated, not trained
    assert initial["train_loss"] is None and initial["val_loss"] == res.best_val_loss < min(val_losses(res)[1:])
    on_disk = json.loads((tmp_path / "history.json").read_text())["epochs"]
    assert [r["epoch"] for r in on_disk] == [0, 1, 2] and on_disk[0]["val_loss"] == res.best_val_loss
    best = load_checkpoint(tmp_path / "checkpoints" / "best.pt")
    assert best["epoch"] == 0
    assert torch.equal(torch.cat([v.flatten() for k, v in best["model"].items() if not k.startswith(("input_", "target_"))]), init)


def test_early_stopping_counts_epochs_without_a_new_best_and_reads_older_checkpoints():
    from migt_train.training.early_stopping import EarlyStopping

    early = EarlyStopping(patience=2, min_delta=0.0)
    assert early.update(1.0, 0) and early.update(0.9, 1)
    assert not early.update(0.95, 2) and not early.should_stop
    assert not early.update(0.9, 3) and early.should_stop and early.best_epoch == 1
    again = EarlyStopping(patience=2)
    again.load_state_dict({**early.state_dict(), "lowest": 0.5})  # a checkpoint written with the removed guard
    assert vars(again) == vars(early)
