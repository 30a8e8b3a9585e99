"""A pooled market: instrument blocks, views that are the instruments' own markets, per-instrument scores."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from evaluation_helpers import LEVELS, make_market

from migt_train.data.pooled import instrument_view, pool_markets, split_rows_of
from migt_train.evaluation.baselines import fit_baselines
from migt_train.evaluation.per_instrument import per_instrument


def pooled(b_scale: float = 1.0):
    a, b = make_market(n=900, seed=0), make_market(n=700, seed=1)
    b.features *= b_scale
    b.targets *= b_scale
    return pool_markets({"A": a, "B": b}, ["A", "B"]), a, b


def test_blocks_and_views_are_the_instruments_own_markets():
    data, a, b = pooled()
    assert data.instruments == ["A", "B"] and data.n_instruments == 2
    assert torch.equal(data.instrument, torch.cat([torch.zeros(900), torch.ones(700)]).long())
    for name, own in (("A", a), ("B", b)):
        view = instrument_view(data, name)
        for key in ("features", "targets", "window_start", "bar_in_day", "vol_anchor"):
            assert torch.equal(getattr(view, key), getattr(own, key)), key
        assert all(torch.equal(view.splits[k], own.splits[k]) for k in own.splits)
        assert np.array_equal(view.timestamps, own.timestamps)
        assert view.instruments == [] and view.n_instruments == 1
    # per-instrument scaling statistics are each instrument's own
    mean, std = data.feature_stats("train")
    assert torch.equal(mean[1], b.feature_stats("train")[0]) and torch.equal(std[0], a.feature_stats("train")[1])


def test_no_window_mixes_instruments():
    data, _, _ = pooled()
    rows = torch.cat([v for v in data.splits.values()])
    batch = data.batch(rows)
    pos = rows[:, None] - (data.max_seq_len - 1) + torch.arange(data.max_seq_len)
    owner = data.instrument[pos.clamp_min(0)]
    assert ((owner == batch["instrument"][:, None]) | ~batch["mask"]).all()
    assert torch.equal(batch["instrument"], data.instrument[rows])


def test_per_instrument_scores_use_each_instruments_own_baselines():
    data, a, b = pooled(b_scale=3.0)
    test = data.splits["test"]
    q = torch.randn(len(test), len(data.horizons), len(LEVELS)).sort(-1).values * 1e-3
    blocks, preds = per_instrument(data, q, LEVELS, 24)
    assert list(blocks) == ["A", "B"]
    at = split_rows_of(data, test)
    for name, own in (("A", a), ("B", b)):
        own_preds = {k: m.predict(own.splits["test"]) for k, m in fit_baselines(own, LEVELS, 24).items()}
        for k, p in own_preds.items():
            assert torch.equal(preds[k][torch.from_numpy(at[name])], p), (name, k)
        assert blocks[name]["n_test_samples"] == len(own.splits["test"])
        assert set(blocks[name]) >= {"test", "baselines", "best_baseline", "skill_vs_best_baseline", "comparison",
                                     "calibration_noise"}


def test_an_instruments_baselines_use_only_its_own_training_split():
    data, _, _ = pooled()
    ref = fit_baselines(instrument_view(data, "A"), LEVELS, 24)
    # everything of B, and A's val and test targets, changed
    lo = int((data.instrument == 1).nonzero()[0])
    data.features[lo:] = data.features[lo:] * 5 + 1.0
    data.targets[lo:] = data.targets[lo:] * 5 + 0.1
    for split in ("val", "test"):
        rows = data.splits[split][data.splits[split] < lo]
        data.targets[rows] = data.targets[rows] * 50 + 0.1
    new = fit_baselines(instrument_view(data, "A"), LEVELS, 24)
    assert torch.equal(ref["climatology"].quantiles, new["climatology"].quantiles)
    assert torch.equal(ref["ewma"].z, new["ewma"].z)
    assert torch.equal(ref["seasonal_climatology"].quantiles, new["seasonal_climatology"].quantiles)
    assert ref["garch_t_tod"].report()["params"] == new["garch_t_tod"].report()["params"]


def test_pool_refuses_instruments_that_differ():
    from migt_train.errors import MigtError

    a, b = make_market(seed=0), make_market(seed=1)
    b.horizons = [1, 2, 3]
    with pytest.raises(MigtError, match="horizons"):
        pool_markets({"A": a, "B": b}, ["A", "B"])


def test_val_scores_are_each_instruments_own_rows():
    from migt_train.evaluation.metrics import quantile_metrics
    from migt_train.evaluation.per_instrument import instrument_scores

    data, a, b = pooled(b_scale=3.0)
    val = data.splits["val"]
    y = data.targets[val]
    q = torch.randn(len(val), len(data.horizons), len(LEVELS)).sort(-1).values * 1e-3
    scores = instrument_scores(data, val, q, y, LEVELS)
    assert list(scores) == ["A", "B"]
    n_a = len(a.splits["val"])  # A's block comes first: its val rows are the first n_a
    own = {"A": slice(0, n_a), "B": slice(n_a, None)}
    for name, rows in own.items():
        expected = quantile_metrics(q[rows], y[rows], LEVELS, data.horizon_names)
        assert scores[name] == {k: expected[k] for k in ("pinball_loss", "crps", "calibration_error")}
    # B's targets are three times A's: its forecasts (the same scale) miss by more
    assert scores["B"]["pinball_loss"] > scores["A"]["pinball_loss"]
