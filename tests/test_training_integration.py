"""The trainer with the real MIGT-TVDT (tiny config): fits, checkpoints load into a fresh model, resume is exact."""

import math
from pathlib import Path

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


def test_instrument_decay_shrinks_each_instruments_deviation_only():
    """trainer.instrument_decay: the heads' per-instrument deviations from the shared context weights form a group
    of their own with that weight decay (partial pooling); 0 leaves the optimizer as it was (one group)."""
    import functools

    from migt_train.training.trainer import DEVIATIONS, _optimizer

    levels = [0.05, 0.1, 0.25, 0.5, 0.75, 0.89, 0.94]
    torch.manual_seed(0)
    model = model_mod.MIGTTVDT(n_variables=5, n_horizons=3, n_quantiles=7, max_seq_len=40, bars_per_day=96,
                               d_model=8, n_heads=2, d_ff=16, n_temporal_layers=1, n_variable_layers=1, head_hidden=8,
                               n_instruments=2, vol_anchor=True, n_realized=4, quantile_levels=levels,
                               head_shape="fixed")
    named = [(n, p) for n, p in model.named_parameters() if n.startswith("heads.")]
    adamw = functools.partial(torch.optim.AdamW, lr=1e-3, weight_decay=0.01)
    (plain,) = _optimizer(adamw, named, 0.0).param_groups
    rest, own = _optimizer(adamw, named, 0.0, instrument_decay=100.0).param_groups
    deviation = model.heads.instrument_context_scale
    assert DEVIATIONS == ("heads.instrument_context_scale",)
    assert len(own["params"]) == 1 and own["params"][0] is deviation and own["weight_decay"] == 100.0
    assert rest["weight_decay"] == 0.01 and len(rest["params"]) == len(plain["params"]) - 1
    assert not any(p is deviation for p in rest["params"])
    # one step without gradients: decoupled decay alone, 1 - lr x decay on the deviations, 1 - lr x 0.01 on the rest
    with torch.no_grad():
        deviation.fill_(1.0)
        model.heads.context_scale.fill_(1.0)
    for _, p in named:
        p.grad = torch.zeros_like(p)
    opt = _optimizer(adamw, named, 0.0, instrument_decay=100.0)
    opt.step()
    assert torch.allclose(deviation, torch.full_like(deviation, 0.9))
    assert torch.allclose(model.heads.context_scale, torch.full_like(model.heads.context_scale, 1 - 1e-5))
    with pytest.raises(MigtError, match="trainer.instrument_decay"):
        make_trainer(Path("unused"), instrument_decay=-1.0)
