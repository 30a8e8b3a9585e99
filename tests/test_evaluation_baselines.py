"""Baselines: hand-checked fits, training split only, causal volatility."""

import dataclasses
import math

import numpy as np
import pytest
import torch
from evaluation_helpers import LEVELS, make_market

from migt_train.errors import MigtError
from migt_train.volatility.garch import GarchTOD
from migt_train.evaluation.baselines import (
    Climatology,
    EWMAVolatility,
    GarchTODBaseline,
    SeasonalClimatology,
    fit_baselines,
)


def ewma_alpha(halflife: float) -> float:
    """Smoothing weight of the newest squared return for a given halflife."""
    return 1.0 - math.exp(-math.log(2.0) / halflife)


def test_climatology_is_training_quantiles():
    data = make_market()
    clim = Climatology.fit(data, [0.1, 0.5])
    y = data.split_targets("train").double()
    assert len(y) % 2 == 0  # so the median is the mean of the two middle values
    mid = y.sort(0).values[len(y) // 2 - 1 : len(y) // 2 + 1].mean(0)
    assert torch.allclose(clim.quantiles[:, 1], mid)
    assert torch.allclose(clim.quantiles[:, 0], torch.quantile(y, 0.1, dim=0))
    pred = clim.predict(data.splits["test"][:4])
    assert pred.shape == (4, 3, 2) and torch.equal(pred[0], pred[3])


def test_ewma_matches_hand_recursion():
    data = make_market()
    b = EWMAVolatility.fit(data, LEVELS, halflife=10)
    r = data.features[:, 0].double().numpy()
    a = ewma_alpha(10)
    train = data.splits["train"]
    v = np.mean(r[int(data.window_start[train[0]]) : int(train[-1]) + 1] ** 2)
    for t in range(50):
        v = (1 - a) * v + a * r[t] ** 2
    assert b.sigma[49].item() == pytest.approx(math.sqrt(v), rel=1e-9)
    rows = torch.tensor([100, 700])
    want = b.sigma[rows, None, None] * torch.tensor([1.0, 3.0, 6.0]).sqrt()[:, None] * b.z
    assert torch.allclose(b.predict(rows), want)


def test_ewma_is_causal():
    data = make_market()
    before = EWMAVolatility.fit(data, LEVELS).sigma
    data.features[600:, 0] *= 10  # later returns must not move earlier volatility
    after = EWMAVolatility.fit(data, LEVELS).sigma
    assert torch.equal(before[:600], after[:600]) and not torch.equal(before[600:], after[600:])


def test_baselines_use_training_split_only():
    data = make_market()
    ref = fit_baselines(data, LEVELS, 24)
    for split in ("val", "test"):
        data.targets[data.splits[split]] = data.targets[data.splits[split]] * 50 + 0.1
    new = fit_baselines(data, LEVELS, 24)
    assert torch.equal(ref["climatology"].quantiles, new["climatology"].quantiles)
    assert torch.equal(ref["ewma"].z, new["ewma"].z) and torch.equal(ref["ewma"].sigma, new["ewma"].sigma)
    assert torch.equal(ref["seasonal_climatology"].quantiles, new["seasonal_climatology"].quantiles)
    assert ref["garch_t_tod"].report() | {"fit_seconds": 0} == new["garch_t_tod"].report() | {"fit_seconds": 0}
    assert np.array_equal(ref["garch_t_tod"].sigma2_next, new["garch_t_tod"].sigma2_next)
    data.targets[data.splits["train"][:50]] += 1.0  # and the training targets do matter
    assert not torch.equal(ref["climatology"].quantiles, fit_baselines(data, LEVELS, 24)["climatology"].quantiles)


def test_ewma_needs_log_return_and_positive_halflife():
    data = make_market()
    with pytest.raises(MigtError, match="halflife"):
        EWMAVolatility.fit(data, LEVELS, halflife=0)
    data.feature_names[0] = "close"
    with pytest.raises(MigtError, match="log_return"):
        EWMAVolatility.fit(data, LEVELS)


def test_garch_params_ignore_returns_after_the_training_bars():
    data = make_market()
    ref = GarchTODBaseline.fit(data, LEVELS)
    end = data.visible_bars("train").stop
    data.features[end:, 0] = data.features[end:, 0] * 7 + 1e-3  # val/test returns
    new = GarchTODBaseline.fit(data, LEVELS)
    assert ref.report()["params"] == new.report()["params"] and np.array_equal(ref.model.profile, new.model.profile)
    # filtered causally with the fixed parameters: same up to the last training bar, different after
    assert np.array_equal(ref.sigma2_next[:end], new.sigma2_next[:end])
    assert not np.array_equal(ref.sigma2_next[end:], new.sigma2_next[end:])
    data.features[5:40, 0] *= 4  # the training returns do matter
    assert GarchTODBaseline.fit(data, LEVELS).report()["params"] != ref.report()["params"]


def test_garch_baseline_predicts_the_following_bars():
    data = make_market()
    b = GarchTODBaseline.fit(data, LEVELS)
    rows = data.splits["test"][:5]
    r = data.features[:, 0].double().numpy()
    bid = data.bar_in_day.numpy()
    m = b.model
    assert isinstance(m, GarchTOD) and m.converged and 0 < m.persistence <= 1 + 1e-9
    want = m.quantiles(m.filter_variance(r, bid), bid, rows.numpy(), data.horizons, LEVELS)
    got = b.predict(rows)
    assert got.shape == (5, 3, 7) and np.allclose(got.numpy(), want)
    # 1-bar horizon: the one-step variance of bar t+1 times its profile
    sd1 = np.sqrt(m.filter_variance(r, bid)[rows.numpy()]) * m.profile[bid[rows.numpy() + 1]]
    np.testing.assert_allclose(got[:, 0, 3].numpy(), sd1 * m.standard_quantiles([0.5])[0], atol=1e-15)
    np.testing.assert_allclose(got[:, 0, 0].numpy(), sd1 * m.standard_quantiles([0.05])[0], rtol=1e-12)


def test_seasonal_climatology_per_bar_of_day_with_pooled_fallback():
    base = make_market()
    t = np.arange(len(base.targets))
    # hourly bars: 24 slots a day, slot 23 never occurs, so it must fall back to the pooled quantiles
    data = dataclasses.replace(base, bar_minutes=60, bar_in_day=torch.as_tensor(t % 23))
    sc = SeasonalClimatology.fit(data, LEVELS, min_samples=10)
    assert sc.quantiles.shape == (24, 3, 7) and sc.n_pooled_cells == 1
    train = data.splits["train"].numpy()
    y = data.targets.double().numpy()
    cell = train[t[train] % 23 == 5]
    np.testing.assert_allclose(sc.quantiles[5].numpy(), np.quantile(y[cell], LEVELS, axis=0).T)
    pooled = Climatology.fit(data, LEVELS).quantiles
    assert torch.equal(sc.quantiles[23], pooled)
    rows = torch.tensor([700, 701])
    assert torch.equal(sc.predict(rows), sc.quantiles[torch.as_tensor(t[[700, 701]] % 23)])
    # with a threshold above every cell's count, all slots are pooled: plain climatology
    all_pooled = SeasonalClimatology.fit(data, LEVELS, min_samples=10_000)
    assert all_pooled.n_pooled_cells == 24 and torch.equal(all_pooled.predict(rows), Climatology.fit(data, LEVELS).predict(rows))
