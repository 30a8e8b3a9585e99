"""Baselines: hand-checked fits, training split only, causal volatility."""

import math

import numpy as np
import pytest
import torch
from evaluation_helpers import LEVELS, make_market

from migt_train.errors import MigtError
from migt_train.evaluation.baselines import Climatology, EWMAVolatility, fit_baselines


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
    data.targets[data.splits["train"][:50]] += 1.0  # and the training targets do matter
    assert not torch.equal(ref["climatology"].quantiles, fit_baselines(data, LEVELS, 24)["climatology"].quantiles)


def test_ewma_needs_log_return_and_positive_halflife():
    data = make_market()
    with pytest.raises(MigtError, match="halflife"):
        EWMAVolatility.fit(data, LEVELS, halflife=0)
    data.feature_names[0] = "close"
    with pytest.raises(MigtError, match="log_return"):
        EWMAVolatility.fit(data, LEVELS)
