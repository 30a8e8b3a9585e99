"""The trainer with the real MIGT-TVDT (tiny config): fits, checkpoints load into a fresh model, resume is exact."""

import math

import pytest
import torch

from migt_train.training import load_checkpoint
from training_helpers import make_market, make_trainer, val_losses

import migt_train.model as model_mod
from migt_train.errors import MigtError


def _model(data):
    torch.manual_seed(0)
    return model_mod.MIGTTVDT(
        n_variables=data.n_features, n_horizons=len(data.horizon_names), n_quantiles=7,
        max_seq_len=data.max_seq_len, bars_per_day=data.bars_per_day, d_model=8, n_heads=2, d_ff=16,
        n_temporal_layers=1, n_variable_layers=1, head_hidden=8, tod_dims=4, dow_dims=2, dom_dims=2,
        doy_dims=4, dropout=0.1,
    )


def test_migt_tvdt_trains_and_resumes_exactly(tmp_path):
    data = make_market(n=240)
    kw = dict(data=data, batch_size=8, limit_train_batches=6, lr=1e-3)
    full = make_trainer(tmp_path / "full", model=_model(data), max_epochs=2, **kw).fit()
    assert all(math.isfinite(v) for v in val_losses(full))
    make_trainer(tmp_path / "split", model=_model(data), max_epochs=1, **kw).fit()
    resumed = make_trainer(tmp_path / "split", model=_model(data), max_epochs=2, resume="auto", **kw).fit()
    assert val_losses(resumed) == pytest.approx(val_losses(full), abs=1e-6)

    ckpt = load_checkpoint(tmp_path / "full" / "checkpoints" / "best.pt")
    fresh = _model(data)
    fresh.load_state_dict(ckpt["model"])
    assert torch.allclose(fresh.target_mean, data.target_stats("train")[0])


def test_pooled_migt_tvdt_trains_and_resumes_exactly(tmp_path):
    from migt_train.data.pooled import pool_markets

    data = pool_markets({"A": make_market(n=240, seed=0), "B": make_market(n=200, seed=1)}, ["A", "B"])

    def model():
        torch.manual_seed(0)
        return model_mod.MIGTTVDT(
            n_variables=data.n_features, n_horizons=len(data.horizon_names), n_quantiles=7,
            max_seq_len=data.max_seq_len, bars_per_day=data.bars_per_day, d_model=8, n_heads=2, d_ff=16,
            n_temporal_layers=1, n_variable_layers=1, head_hidden=8, tod_dims=4, dow_dims=2, dom_dims=2,
            doy_dims=4, dropout=0.1, n_instruments=2,
        )

    kw = dict(data=data, batch_size=8, limit_train_batches=6, lr=1e-3)
    full = make_trainer(tmp_path / "full", model=model(), max_epochs=2, **kw).fit()
    make_trainer(tmp_path / "split", model=model(), max_epochs=1, **kw).fit()
    resumed = make_trainer(tmp_path / "split", model=model(), max_epochs=2, resume="auto", **kw).fit()
    assert val_losses(resumed) == val_losses(full)  # bit for bit at one thread
    ckpt = load_checkpoint(tmp_path / "full" / "checkpoints" / "best.pt")
    assert ckpt["instruments"] == ["A", "B"]
    # each instrument's own scaling rows, and an embedding that training moved away from zero
    assert torch.equal(ckpt["model"]["target_std"], data.target_stats("train")[1])
    assert ckpt["model"]["instrument.weight"].abs().sum() > 0
    # a checkpoint of other instruments is refused on resume
    other = pool_markets({"A": make_market(n=240, seed=0), "C": make_market(n=200, seed=1)}, ["A", "C"])
    with pytest.raises(MigtError, match="instruments"):
        make_trainer(tmp_path / "split", model=model(), max_epochs=3, resume="auto", **{**kw, "data": other}).fit()


def test_body_lr_scale_zero_trains_the_heads_only(tmp_path):
    """trainer.body_lr_scale=0: the body (everything but heads.*) keeps its initial weights, the heads move."""
    data = make_market(n=240)
    model = _model(data)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    make_trainer(tmp_path, data=data, model=model, batch_size=8, limit_train_batches=4, lr=1e-2, max_epochs=1,
                 body_lr_scale=0.0).fit()
    moved = {n for n, p in model.named_parameters() if not torch.equal(p.detach(), before[n])}
    assert moved and all(n.startswith("heads.") for n in moved), sorted(moved)


def test_body_lr_scale_sets_the_body_lr(tmp_path):
    data = make_market(n=240)
    trainer = make_trainer(tmp_path, data=data, model=_model(data), lr=1e-2, body_lr_scale=0.25)
    heads, body = trainer.optimizer.param_groups
    assert all(p is q for p, q in zip(heads["params"], _params_named(trainer.model, "heads.")))
    assert body["initial_lr"] == pytest.approx(0.25 * heads["initial_lr"])
    with pytest.raises(MigtError, match="trainer.body_lr_scale"):
        make_trainer(tmp_path / "bad", data=data, model=_model(data), body_lr_scale=1.5)
    with pytest.raises(MigtError, match="body_lr_scale.*has none"):  # a model without heads.* parameters
        make_trainer(tmp_path / "toy", data=data, body_lr_scale=0.0)


def _params_named(model, prefix):
    return [p for n, p in model.named_parameters() if n.startswith(prefix)]
