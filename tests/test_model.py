"""MIGT-TVDT: shapes, invariances, calibration-relevant behaviour, config instantiation."""

from __future__ import annotations

from pathlib import Path

import hydra.utils
import pytest
import torch
from omegaconf import OmegaConf

import migt_train  # noqa: F401  (registers the resolvers the model yaml files use)
from migt_train.model import MIGTTVDT
from migt_train.model.revin import RevIN
from migt_train.model.time_encoding import Time2Vec, TimeOfDayEncoding

CONF = Path(__file__).resolve().parent.parent / "conf" / "model"
LITERALS = {"n_variables": 24, "n_horizons": 5, "n_quantiles": 7, "max_seq_len": 288, "bars_per_day": 288,
            "vol_anchor": False, "n_event_features": 0, "n_realized": 0, "quantile_levels": [0.05, 0.1, 0.25, 0.5, 0.75, 0.89, 0.94]}
BPD = 48  # bars per day of the tiny test models (30-minute bars)
TINY = dict(n_variables=5, n_horizons=3, n_quantiles=7, max_seq_len=40, bars_per_day=BPD, d_model=16,
            n_heads=2, d_ff=32, dropout=0.1, n_temporal_layers=2, n_variable_layers=1, head_hidden=16)


def tiny(seed: int = 0, **overrides) -> MIGTTVDT:
    torch.manual_seed(seed)
    return MIGTTVDT(**{**TINY, **overrides})


def make_batch(b: int = 4, t: int = 40, v: int = 5, seed: int = 0, valid: list[int] | None = None) -> dict:
    """Left-padded windows like MarketData.batch; valid[i] = number of real bars of sample i."""
    g = torch.Generator().manual_seed(seed)
    valid = valid or [t] * b
    mask = torch.arange(t)[None, :] >= torch.tensor([t - n for n in valid])[:, None]
    return {
        "features": torch.randn(b, t, v, generator=g).masked_fill(~mask[..., None], 0.0),
        "mask": mask,
        "time": {
            "bar_in_day": ((torch.arange(t) + torch.randint(0, BPD, (b, 1), generator=g)) % BPD).masked_fill(~mask, 0),
            "day_of_week": torch.randint(0, 7, (b,), generator=g),
            "day_of_month": torch.randint(1, 32, (b,), generator=g),
            "day_of_year": torch.randint(1, 367, (b,), generator=g),
        },
    }


def run(model: MIGTTVDT, batch: dict) -> dict:
    return model(batch["features"], batch["mask"], batch["time"])


def scramble_padding(batch: dict, seed: int = 1) -> dict:
    """Arbitrary (huge, NaN-free) features and bar indices where mask is False."""
    g = torch.Generator().manual_seed(seed)
    pad = ~batch["mask"]
    noise = torch.randn(batch["features"].shape, generator=g) * 1e4
    bar = torch.randint(0, BPD, batch["mask"].shape, generator=g)
    return {
        "features": torch.where(pad[..., None], noise, batch["features"]),
        "mask": batch["mask"],
        "time": {**batch["time"], "bar_in_day": torch.where(pad, bar, batch["time"]["bar_in_day"])},
    }


@pytest.mark.parametrize("patch_len", [1, 4])
def test_output_shapes_and_non_crossing(patch_len):
    model = tiny(patch_len=patch_len)
    model.set_scaling(torch.randn(5), torch.rand(5) + 0.5, torch.randn(3) * 1e-3, torch.rand(3) * 1e-2 + 1e-3)
    batch = make_batch(b=8, valid=[40, 33, 12, 1, 40, 7, 40, 25])
    batch["features"] = batch["features"] * 10
    for train in (True, False):
        model.train(train)
        out = run(model, batch)
        for key in ("quantiles", "quantiles_std"):
            q = out[key]
            assert q.shape == (8, 3, 7)
            assert torch.isfinite(q).all()
            assert (q[..., 1:] >= q[..., :-1]).all()


def test_quantiles_are_standardised_quantiles_mapped_to_log_returns():
    model = tiny().eval()
    target_mean, target_std = torch.tensor([1e-4, -2e-4, 3e-4]), torch.tensor([1e-3, 2e-3, 4e-3])
    model.set_scaling(torch.zeros(5), torch.ones(5), target_mean, target_std)
    out = run(model, make_batch())
    expected = out["quantiles_std"] * target_std[:, None] + target_mean[:, None]
    torch.testing.assert_close(out["quantiles"], expected)


def test_inputs_are_standardised_with_the_input_buffers():
    batch = make_batch()
    mean, std = torch.tensor([100.0, -3.0, 0.0, 5.0, 1e3]), torch.tensor([10.0, 0.5, 1.0, 2.0, 1e2])
    raw = {**batch, "features": batch["features"] * std + mean}
    plain, scaled = tiny().eval(), tiny().eval()
    scaled.set_scaling(mean, std, torch.zeros(3), torch.ones(3))
    torch.testing.assert_close(run(scaled, raw)["quantiles_std"], run(plain, batch)["quantiles_std"])


def test_initial_quantiles_span_about_the_standard_normal_range():
    q = run(tiny().eval(), make_batch())["quantiles_std"]
    assert (q[..., 0] - -1.6).abs().max() < 0.5 and (q[..., -1] - 1.6).abs().max() < 0.5


@pytest.mark.parametrize("patch_len", [1, 12])
def test_padded_steps_do_not_change_the_output(patch_len):
    model = tiny(patch_len=patch_len).eval()
    batch = make_batch(b=5, valid=[40, 29, 17, 3, 1])
    reference = run(model, batch)["quantiles"]
    scrambled = run(model, scramble_padding(batch))["quantiles"]
    assert (scrambled - reference).abs().max() < 1e-5


@pytest.mark.parametrize("patch_len", [1, 12])
def test_a_sample_does_not_depend_on_its_batch_mates(patch_len):
    model = tiny(patch_len=patch_len).eval()
    batch = make_batch(b=3, valid=[40, 23, 9])
    together = run(model, batch)["quantiles"]
    for i in range(3):
        alone = {"features": batch["features"][i : i + 1], "mask": batch["mask"][i : i + 1],
                 "time": {k: v[i : i + 1] for k, v in batch["time"].items()}}
        assert (run(model, alone)["quantiles"] - together[i]).abs().max() < 1e-5


def test_revin_statistics_use_valid_steps_only():
    revin = RevIN(3)
    x = torch.randn(2, 10, 3)
    mask = torch.arange(10)[None, :] >= torch.tensor([[0], [6]])
    y, stats = revin(torch.where(mask[..., None], x, 1e6), mask)
    valid = x[1, 6:]
    torch.testing.assert_close(stats[1, :, 0], valid.mean(0))
    torch.testing.assert_close(stats[1, :, 1], 0.5 * torch.log(valid.var(0, unbiased=False) + revin.log_eps))
    torch.testing.assert_close(y[1, 6:], (valid - valid.mean(0)) / torch.sqrt(valid.var(0, unbiased=False) + revin.eps))
    assert (y[1, :6] == 0).all()


@pytest.mark.parametrize("patch_len", [1, 12])
def test_single_valid_step_gives_finite_output_and_gradients(patch_len):
    model = tiny(patch_len=patch_len)
    for b in (1, 3):
        batch = make_batch(b=b, valid=[1] * b if b == 1 else [1, 40, 2])
        for train in (True, False):
            model.train(train)
            out = run(model, batch)
            assert torch.isfinite(out["quantiles"]).all()
        out["quantiles_std"].sum().backward()
        assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
        model.zero_grad()


def test_time_of_day_is_periodic_in_bars_per_day():
    enc = TimeOfDayEncoding(bars_per_day=288, dims=32)
    bars = torch.tensor([0, 1, 100, 287])
    torch.testing.assert_close(enc(bars), enc(bars + 288), rtol=0, atol=0)
    torch.testing.assert_close(enc(torch.tensor([0])), enc(torch.tensor([288 * 3])), rtol=0, atol=0)
    assert enc(bars).shape == (4, 32)
    assert not torch.allclose(enc(torch.tensor([0])), enc(torch.tensor([144])))
    # through the model: shifting every bar index by a whole day changes nothing
    model, batch = tiny().eval(), make_batch()
    shifted = {**batch, "time": {**batch["time"], "bar_in_day": batch["time"]["bar_in_day"] + BPD}}
    torch.testing.assert_close(run(model, shifted)["quantiles"], run(model, batch)["quantiles"], rtol=0, atol=0)


def test_calendar_encodings_are_learned_day_of_week_and_time2vec():
    calendar = MIGTTVDT().calendar
    assert isinstance(calendar.day_of_week, torch.nn.Embedding)
    assert calendar.day_of_week.weight.shape == (7, 16)
    for module, dims in ((calendar.day_of_month, 16), (calendar.day_of_year, 32)):
        assert isinstance(module, Time2Vec)
        assert module.weight.shape == (dims,) and module.bias.shape == (dims,)
        assert module.weight.requires_grad
    assert calendar.proj.in_features == 32 + 16 + 16 + 32 and calendar.proj.out_features == 256
    t2v = Time2Vec(8, period=31.0)
    out = t2v(torch.tensor([1.0, 2.0, 3.0]))
    torch.testing.assert_close(out[1, 0] - out[0, 0], out[2, 0] - out[1, 0])  # linear term
    assert out[:, 1:].abs().max() <= 1.0  # periodic terms


def test_save_load_round_trip_is_identical(tmp_path):
    model = tiny(patch_len=4)
    model.set_scaling(torch.randn(5), torch.rand(5) + 0.5, torch.randn(3), torch.rand(3) + 0.1)
    torch.save(model.state_dict(), tmp_path / "model.pt")
    loaded = tiny(seed=123, patch_len=4)
    loaded.load_state_dict(torch.load(tmp_path / "model.pt", weights_only=True))
    model.eval(), loaded.eval()
    batch = make_batch(valid=[40, 13, 5, 40])
    a, b = run(model, batch), run(loaded, batch)
    assert torch.equal(a["quantiles"], b["quantiles"]) and torch.equal(a["quantiles_std"], b["quantiles_std"])
    assert torch.equal(loaded.target_std, model.target_std)


def test_patches_left_pad_to_a_multiple_of_patch_len():
    model = tiny(patch_len=12).eval()  # T = 40 -> 4 patches, the first padded by 8 bars
    out = run(model, make_batch(valid=[40, 40, 30, 11]))
    assert out["quantiles"].shape == (4, 3, 7) and torch.isfinite(out["quantiles"]).all()


def test_wider_intervals_when_the_input_is_more_volatile():
    """Train briefly on a task whose target scale is proportional to the window's return volatility:
    the model must learn to read the scale that RevIN removes."""
    torch.manual_seed(0)
    model = MIGTTVDT(n_variables=3, n_horizons=2, n_quantiles=5, max_seq_len=24, bars_per_day=BPD, d_model=16,
                     n_heads=2, d_ff=32, dropout=0.0, n_temporal_layers=1, n_variable_layers=1, head_hidden=16)
    levels = torch.tensor([0.05, 0.25, 0.5, 0.75, 0.95])
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)

    def sample(b: int, vol: torch.Tensor, seed: int):
        g = torch.Generator().manual_seed(seed)
        batch = make_batch(b=b, t=24, v=3, seed=seed)
        returns = torch.randn(b, 24, generator=g) * vol[:, None]
        batch["features"] = torch.stack([returns, returns.abs(), batch["features"][..., 2]], dim=-1)
        return batch, torch.randn(b, 2, generator=g) * vol[:, None]

    for step in range(150):
        g = torch.Generator().manual_seed(10_000 + step)
        vol = torch.exp(torch.empty(64).uniform_(-1.0, 1.0, generator=g))
        batch, y = sample(64, vol, step)
        q = run(model, batch)["quantiles_std"]
        err = y[..., None] - q
        loss = torch.maximum(levels * err, (levels - 1) * err).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    model.eval()
    batch, _ = sample(256, torch.ones(256), seed=99_999)
    calm = run(model, batch)["quantiles_std"]
    for k in (2.0,):
        batch_k = {**batch, "features": batch["features"] * torch.tensor([k, k, 1.0])}
        wild = run(model, batch_k)["quantiles_std"]
        width_ratio = ((wild[..., -1] - wild[..., 0]) / (calm[..., -1] - calm[..., 0])).mean()
        assert width_ratio > 1.5, width_ratio


def model_yaml(name: str):
    """conf/model/<name>.yaml with its defaults list applied (migt_tvdt_cpu inherits from migt_tvdt)."""
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(config_name=name)


def instantiate(name: str, **overrides) -> MIGTTVDT:
    cfg = OmegaConf.merge(model_yaml(name), OmegaConf.create({**LITERALS, **overrides}))
    return hydra.utils.instantiate(cfg)


@pytest.mark.parametrize("name", ["migt_tvdt", "migt_tvdt_cpu"])
def test_yaml_instantiates_through_hydra(name):
    raw = model_yaml(name)
    assert raw._target_ == "migt_train.model.MIGTTVDT"
    assert set(LITERALS) <= set(raw.keys())
    model = instantiate(name, d_model=32, n_heads=2, d_ff=64) if name == "migt_tvdt" else instantiate(name)
    assert isinstance(model, MIGTTVDT)
    batch = make_batch(b=2, t=288, v=24)
    batch["time"]["bar_in_day"] %= 288
    out = run(model.eval(), batch)
    assert out["quantiles"].shape == (2, 5, 7)


def test_full_size_parameter_count_matches_the_reference():
    model = instantiate("migt_tvdt")
    n = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert abs(n - 6.87e6) / 6.87e6 < 0.02, n


@pytest.mark.parametrize("p", [0.1, 0.3])
def test_dropout_drops_at_rate_p_and_keeps_the_expectation(p):
    from migt_train.model.attention import Dropout

    x = torch.ones(400, 1000, requires_grad=True)
    torch.manual_seed(0)
    y = Dropout(p)(x)
    kept = y != 0
    assert abs(1 - kept.float().mean().item() - p) < 3e-3
    assert abs(y.mean().item() - 1.0) < 5e-3
    assert torch.allclose(y[kept], torch.full_like(y[kept], 1 / (1 - p)), rtol=1e-4)
    y.sum().backward()
    assert torch.equal(x.grad, y.detach())  # gradient = mask * scale
    torch.manual_seed(0)
    assert torch.equal(Dropout(p)(x), y)  # seeded


def test_dropout_identity_in_eval_and_at_zero_all_dropped_at_one():
    from migt_train.model.attention import Dropout

    x = torch.randn(64, 32)
    assert torch.equal(Dropout(0.5).eval()(x), x)
    assert torch.equal(Dropout(0.0)(x), x)
    assert (Dropout(1.0)(x) == 0).all()


def test_anchored_model_starts_at_the_anchor_student_t_quantiles():
    from scipy import stats

    levels = [0.05, 0.1, 0.25, 0.5, 0.75, 0.89, 0.94]
    model = tiny(vol_anchor=True, n_event_features=4, quantile_levels=levels, anchor_df=5.0).eval()
    batch = make_batch(b=6, t=40, v=5)
    sigma = torch.rand(6, 3) * 1e-3 + 1e-4
    batch["time"]["vol_anchor"] = sigma
    batch["time"]["events"] = torch.rand(6, 3, 4)
    q = run(model, batch)["quantiles"]
    t = torch.tensor(stats.t.ppf(levels, 5.0) * (3 / 5) ** 0.5, dtype=torch.float32)
    torch.testing.assert_close(q / sigma[..., None], t.expand(6, 3, -1), atol=1e-4, rtol=1e-4)
    assert (torch.diff(q, dim=-1) > 0).all()


def test_switches_off_is_the_reference_architecture():
    """With vol_anchor off and no event features the model has exactly the MIGT-TVDT reference architecture's parameters, and the
    composed nq_full experiment runs it that way."""
    from migt_train.config.compose import compose_config

    base = tiny()
    off = tiny(vol_anchor=False, n_event_features=0, quantile_levels=[0.1] * 7)
    assert [n for n, _ in base.named_parameters()] == [n for n, _ in off.named_parameters()]
    on = tiny(vol_anchor=True, n_event_features=6, quantile_levels=[0.05, 0.1, 0.25, 0.5, 0.75, 0.89, 0.94])
    extra = sum(p.numel() for p in on.parameters()) - sum(p.numel() for p in base.parameters())
    assert extra == 7 * 16 + 16 + 3 * 7  # context Linear(7 -> d_model 16) and per-horizon log-spread weights
    cfg = compose_config(["experiment=nq_full"])
    assert cfg.model.vol_anchor is False and cfg.model.n_event_features == 0
    quick = compose_config()
    assert quick.model.vol_anchor is True and quick.model.n_event_features == 6


def test_anchored_model_starts_at_given_residual_quantiles():
    levels = [0.05, 0.1, 0.25, 0.5, 0.75, 0.89, 0.94]
    model = tiny(vol_anchor=True, quantile_levels=levels).eval()
    z = torch.tensor([[-2.0, -1.5, -0.6, 0.01, 0.7, 1.3, 1.9]]).repeat(3, 1) * torch.tensor([[1.0], [1.1], [1.2]])
    model.set_anchor_shape(z)
    batch = make_batch(b=5, t=40, v=5)
    sigma = torch.full((5, 3), 2e-3)
    batch["time"]["vol_anchor"] = sigma
    q = run(model, batch)["quantiles"]
    torch.testing.assert_close(q / sigma[..., None], z.expand(5, 3, 7), atol=1e-4, rtol=1e-4)
    with pytest.raises(ValueError, match="vol_anchor"):
        tiny().set_anchor_shape(z)


def test_fixed_head_shape_forecasts_one_shape_for_every_input_times_a_spread():
    levels = [0.05, 0.1, 0.25, 0.5, 0.75, 0.89, 0.94]
    model = tiny(vol_anchor=True, n_event_features=4, quantile_levels=levels, head_shape="fixed")
    assert not any(n.startswith(("heads.w1", "heads.w2", "heads.context.")) for n, _ in model.named_parameters())
    z = torch.tensor([[-2.0, -1.5, -0.6, 0.05, 0.7, 1.3, 1.9]]).repeat(3, 1) * torch.tensor([[1.0], [1.1], [1.2]])
    model.set_anchor_shape(z)
    batch = make_batch(b=6, t=40, v=5)
    batch["time"]["vol_anchor"] = torch.rand(6, 3) * 1e-3 + 1e-4
    batch["time"]["events"] = torch.rand(6, 3, 4)
    sigma = batch["time"]["vol_anchor"]
    torch.testing.assert_close(run(model.eval(), batch)["quantiles"] / sigma[..., None], z.expand(6, 3, 7), atol=1e-5, rtol=1e-5)
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    y = torch.randn(6, 3) * sigma * 3
    for _ in range(5):  # training moves the spread per input and the one shape of every input
        q = run(model, batch)["quantiles"]
        loss = torch.maximum(torch.tensor(levels) * (y[..., None] - q), (torch.tensor(levels) - 1) * (y[..., None] - q)).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    q = run(model.eval(), batch)["quantiles"] / sigma[..., None]
    spread = q / q[:1]  # (B, H, Q) relative to the first sample: one factor per (sample, horizon)
    torch.testing.assert_close(spread, spread[..., :1].expand_as(spread), atol=1e-5, rtol=1e-5)
    assert (spread > 0).all() and spread[1:, :, 0].std(0).min() > 0  # and it depends on the sample
    assert not torch.allclose(q[0] / q[0, :, :1], z / z[:, :1], atol=1e-4)  # the shape itself was trained


def test_one_instrument_is_the_single_instrument_model():
    one, plain = tiny(n_instruments=1), tiny()
    assert one.state_dict().keys() == plain.state_dict().keys()
    assert all(torch.equal(a, b) for a, b in zip(one.state_dict().values(), plain.state_dict().values()))


def test_instruments_have_their_own_scaling_and_embedding():
    model = tiny(n_instruments=3).eval()
    batch = make_batch()
    batch["time"]["instrument"] = torch.tensor([0, 1, 2, 1])
    # instrument 1 standardises its inputs and targets with its own rows of the buffers
    model.set_scaling(torch.zeros(3, 5), torch.ones(3, 5), torch.zeros(3, 3), torch.tensor([[1.0] * 3, [2.0] * 3, [1.0] * 3]))
    out = run(model, batch)
    assert torch.allclose(out["quantiles"][1], 2 * out["quantiles_std"][1], atol=1e-6)
    assert torch.allclose(out["quantiles"][0], out["quantiles_std"][0], atol=1e-6)
    # the embedding starts at zero (every instrument alike) and, once learned, tells them apart
    same = {**batch, "time": {**batch["time"], "instrument": torch.tensor([0, 0, 0, 0])}}
    unit = (torch.zeros(3, 5), torch.ones(3, 5), torch.zeros(3, 3), torch.ones(3, 3))
    model.set_scaling(*unit)
    assert torch.equal(run(model, batch)["quantiles"], run(model, same)["quantiles"])
    with torch.no_grad():
        model.instrument.weight[1] = 1.0
    moved = run(model, batch)["quantiles"] != run(model, same)["quantiles"]
    assert moved[1].all() and moved[3].all() and not moved[0].any() and not moved[2].any()
    with pytest.raises(ValueError, match="input_mean"):
        model.set_scaling(torch.zeros(5), *unit[1:])


def test_calendar_parts_of_width_zero_are_left_out():
    from migt_train.model.time_encoding import CalendarEncoding

    enc = CalendarEncoding(d_model=8, bars_per_day=288, tod_dims=4, dow_dims=2, dom_dims=0, doy_dims=0)
    assert enc.day_of_month is None and enc.day_of_year is None and enc.proj.in_features == 6
    time = {"bar_in_day": torch.arange(6).view(2, 3), "day_of_week": torch.tensor([0, 1]),
            "day_of_month": torch.tensor([1, 31]), "day_of_year": torch.tensor([1, 366])}
    out = enc(time, torch.ones(2, 3, dtype=torch.bool), 1)
    assert out.shape == (2, 3, 8)
    other = dict(time, day_of_month=torch.tensor([5, 6]), day_of_year=torch.tensor([40, 41]))
    assert torch.equal(out, enc(other, torch.ones(2, 3, dtype=torch.bool), 1))  # the day of month/year is not seen


def test_instruments_share_the_heads_context_weights_plus_their_own_deviation():
    """Pooled heads: one set of context weights for every instrument plus each instrument's own deviation, zero
    at the start (every instrument alike); a deviation moves only its instrument's forecasts."""
    levels = [0.05, 0.1, 0.25, 0.5, 0.75, 0.89, 0.94]
    model = tiny(n_instruments=2, vol_anchor=True, n_realized=4, quantile_levels=levels, head_shape="fixed").eval()
    assert model.heads.instrument_context_scale.shape == (2, 3, 1 + 4) and not model.heads.instrument_context_scale.any()
    assert "heads.instrument_context_scale" not in dict(tiny(vol_anchor=True, n_realized=4, quantile_levels=levels,
                                                             head_shape="fixed").named_parameters())
    batch = make_batch()
    batch["time"].update(instrument=torch.tensor([0, 1, 0, 1]), vol_anchor=torch.full((4, 3), 1e-3),
                         realized=torch.randn(4, 4))
    same = {**batch, "time": {**batch["time"], "instrument": torch.zeros(4, dtype=torch.long)}}
    assert torch.equal(run(model, batch)["quantiles"], run(model, same)["quantiles"])
    with torch.no_grad():
        model.heads.instrument_context_scale[1, :, 1:] = 0.5
    moved = (run(model, batch)["quantiles"] != run(model, same)["quantiles"]).flatten(1).any(1)
    assert moved.tolist() == [False, True, False, True]


def test_cross_moves_shift_each_instruments_quantiles_from_zero():
    """n_cross: the tail of time["realized"] (the instruments' recent moves) moves every quantile of a horizon by
    the same amount, per instrument; zero at the start, so the untrained model ignores it."""
    levels = [0.05, 0.1, 0.25, 0.5, 0.75, 0.89, 0.94]
    kw = dict(n_instruments=2, vol_anchor=True, n_realized=4, quantile_levels=levels, head_shape="fixed")
    model, plain = tiny(n_cross=2, **kw).eval(), tiny(**kw).eval()
    assert model.heads.cross_location.shape == (2, 3, 2) and not model.heads.cross_location.any()
    batch = make_batch()
    realized = torch.randn(4, 6)
    batch["time"].update(instrument=torch.tensor([0, 1, 0, 1]), vol_anchor=torch.full((4, 3), 1e-3), realized=realized)
    without = {**batch, "time": {**batch["time"], "realized": realized[:, :4]}}
    assert torch.equal(run(model, batch)["quantiles"], run(plain, without)["quantiles"])
    with torch.no_grad():
        model.heads.cross_location[1, 2] = torch.tensor([0.5, -1.0])
    shift = run(model, batch)["quantiles"] - run(plain, without)["quantiles"]
    expected = 1e-3 * (0.5 * realized[:, 4] - realized[:, 5])  # in units of the anchor's std
    assert torch.allclose(shift[[1, 3], 2], expected[[1, 3], None].expand(-1, 7), atol=1e-9)
    assert not shift[[0, 2]].any() and not shift[:, :2].any()
    errors = list(MIGTTVDT.config_errors({**TINY, **kw, "vol_anchor": False, "n_cross": 2, "dropout": 0.0,
                                          "n_heads": 2, "d_model": 16, "patch_len": 1}))
    assert ("n_cross", "needs data.vol_anchor=true (the moves are in units of the anchor's std)", 2) in errors
