"""The volatility anchor and the release features: causal, fitted on train only, in every batch."""

import numpy as np
import pytest
import torch

from migt_train.data import load_market
from migt_train.volatility.events import N_EVENT_FEATURES
from migt_train.errors import MigtError
from migt_train.volatility.anchor import (CONTEXT_TAIL, PROFILE_SMOOTHING_MINUTES, AnchorFit, apply_anchor,
                                          volatility_anchor)
from migt_train.volatility.garch import GarchTOD
from migt_train.volatility.realized import N_REALIZED, bar_variance
from migt_train.evaluation.baselines import GarchTODBaseline

from data_helpers import data_cfg, small_bars


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MIGT_CACHE_DIR", str(tmp_path / "cache"))


def _series(n_days: int = 20):
    bars = small_bars(n_days=n_days)
    r = np.diff(np.log(bars["close"].to_numpy()))
    bid = (np.arange(len(r)) + 1) % 276
    return r, bid


def test_anchor_is_causal_and_uses_train_params_only():
    r, bid = _series()
    fit, cut = slice(0, 2500), 4000
    a, garch = volatility_anchor(r, bid, fit, 288, [1, 3, 12])
    changed = r.copy()
    changed[cut:] = changed[cut:] * 3.0  # a different future
    b, garch_b = volatility_anchor(changed, bid, fit, 288, [1, 3, 12])
    assert garch_b.params() | {"fit_seconds": 0} == garch.params() | {"fit_seconds": 0}
    np.testing.assert_array_equal(a[:cut], b[:cut])  # row t sees bars <= t only
    assert (b[cut + 1 : -12] > a[cut + 1 : -12]).mean() > 0.9
    # a different training period changes the fit
    _, garch_c = volatility_anchor(changed, bid, slice(0, cut + 1000), 288, [1, 3, 12])
    assert garch_c.params()["omega"] != garch.params()["omega"]
    # anchors grow with the horizon
    assert (np.diff(a[:-12], axis=1) > 0).all()


def test_market_carries_anchor_and_events_consistent_with_the_baseline():
    levels = [0.05, 0.5, 0.95]
    on = load_market(data_cfg(vol_anchor=True, event_calendar=True, synthetic={"n_days": 14}))
    off = load_market(data_cfg(synthetic={"n_days": 14}))
    assert on.vol_anchor.shape == on.targets.shape and on.events.shape == (*on.targets.shape, N_EVENT_FEATURES)
    assert torch.equal(off.vol_anchor, torch.ones_like(off.vol_anchor)) and off.events.shape[-1] == 0
    test = on.splits["test"].numpy()
    baseline = GarchTODBaseline.fit(on, levels)  # fitted on the training bars, as the anchor
    # the anchor is the baseline's GARCH with the time-of-day profile averaged over +-10 minutes
    r = on.features[:, on.feature_names.index("log_return")].double().numpy()
    smoothed = GarchTOD.fit(r, baseline.bar_in_day, on.visible_bars("train"), on.bars_per_day,
                            profile_smoothing=PROFILE_SMOOTHING_MINUTES // on.bar_minutes)
    assert (smoothed.alpha, smoothed.beta) != (baseline.model.alpha, baseline.model.beta)
    expected = smoothed.horizon_std(smoothed.filter_variance(r, baseline.bar_in_day), baseline.bar_in_day, test, on.horizons)
    plain = load_market(data_cfg(vol_anchor=True, synthetic={"n_days": 14}))
    garch = apply_anchor(plain.anchor_fit, r, baseline.bar_in_day, on.horizons)
    np.testing.assert_allclose(garch[test], expected, rtol=1e-5)
    # ...corrected by the bars' range, with the coefficients fitted on the training rows
    bar_var = bar_variance(plain.features.numpy(), plain.feature_names)
    corrected = plain.anchor_fit.har.apply(bar_var, plain.timestamps, baseline.bar_in_day, garch, on.horizons)
    np.testing.assert_allclose(plain.vol_anchor[test].numpy(), corrected[test], rtol=1e-5)
    assert not np.allclose(corrected[test], garch[test], rtol=1e-3)
    b = on.batch(on.splits["train"][:4])
    assert b["vol_anchor"].shape == (4, 5) and b["events"].shape == (4, 5, N_EVENT_FEATURES)
    # releases ahead are counted for the longer horizons at least as often as for the shorter ones
    ahead = on.events[:, :, 0]
    assert (ahead[:, -1] >= ahead[:, 0]).all() and ahead[:, -1].sum() > 0


def test_anchor_knows_the_release_calendar():
    from migt_train.data.sources.calendar import time_info
    from migt_train.volatility.events import event_bars
    from migt_train.data.synthetic import SyntheticConfig, generate
    from migt_train.volatility.anchor import release_lags, release_multiplier

    bars = generate(SyntheticConfig(n_days=90, start="2024-01-02"), 5, "America/New_York", 18 * 60)
    ts = bars["timestamp"].to_numpy()[1:]
    r = np.diff(np.log(bars["close"].to_numpy()))
    bid = time_info(ts, "America/New_York", 18 * 60, 5)["bar_in_day"]
    ev = event_bars(ts, 5)
    fit = slice(0, int(len(r) * 0.7))
    lags = release_lags(ev)
    assert lags.shape == (3, len(r)) and (lags[0][ev == 1] == 0).all() and lags[0].max() == 12
    mult = release_multiplier(r**2, lags, fit)
    assert mult[ev == 1].mean() > 5 and np.median(mult[(lags < 0).all(axis=0)]) == 1.0
    with_cal, _ = volatility_anchor(r, bid, fit, 288, [3], ev)
    without, _ = volatility_anchor(r, bid, fit, 288, [3])
    before = np.flatnonzero(ev == 1) - 1  # origins whose next 15 minutes hold a payrolls release
    before = before[before < len(r) - 3]
    ratio = with_cal[before, 0] / without[before, 0]
    assert np.median(ratio) > 1.5
    # the calendar is known in advance: changing returns after a row does not change its anchor
    changed = r.copy()
    changed[before[-1] + 1 :] *= 2.0
    again, _ = volatility_anchor(changed, bid, fit, 288, [3], ev)
    np.testing.assert_array_equal(again[: before[-1] + 1], with_cal[: before[-1] + 1])


def test_anchored_quantiles_are_the_training_quantiles_of_y_over_sigma():
    levels = [0.05, 0.25, 0.5, 0.75, 0.95]
    m = load_market(data_cfg(vol_anchor=True, synthetic={"n_days": 14}))
    q = m.anchored_quantiles(levels)
    z = (m.targets[m.splits["train"]].double() / m.vol_anchor[m.splits["train"]].double())
    expected = torch.quantile(z, torch.tensor(levels, dtype=torch.float64), dim=0).T
    torch.testing.assert_close(q.double(), expected, rtol=1e-6, atol=1e-6)
    assert (q[:, 1:] > q[:, :-1]).all()
    m.targets[m.splits["val"]] += 1.0  # val and test targets play no part
    torch.testing.assert_close(m.anchored_quantiles(levels), q)

def test_context_is_clipped_to_its_training_range():
    """Each context column is clipped to its CONTEXT_TAIL quantiles on the training rows: fitted there only, the
    same bounds for every split and for forecasts from the stored fit; a stored fit without them (an older run)
    leaves the context as computed."""
    cfg = data_cfg(vol_anchor=True, event_calendar=True, synthetic={"n_days": 14})
    data = load_market(cfg)
    fit, train = data.anchor_fit, data.splits["train"].numpy()
    lo, hi = fit.context_range
    ctx = data.realized.numpy()
    assert fit.context_range.shape == (2, N_REALIZED) and (lo <= hi).all() and (lo < hi).any()
    assert (ctx >= lo).all() and (ctx <= hi).all()
    raw = AnchorFit.from_json({k: v for k, v in fit.to_json().items() if k != "context_range"}, "older run")
    unclipped = load_market(cfg, anchor_fit=raw).realized.numpy()
    assert raw.context_range is None and (unclipped != ctx).any()
    # the bounds are the training rows' quantiles of the unclipped context
    np.testing.assert_allclose(np.quantile(unclipped[train], [CONTEXT_TAIL, 1 - CONTEXT_TAIL], axis=0),
                               fit.context_range, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(np.clip(unclipped, lo, hi), ctx)
    # on the training rows, at most the tails' share of each column moves
    moved = (unclipped[train] != ctx[train]).mean(axis=0)
    assert moved.max() <= 2 * CONTEXT_TAIL + 2 / len(train) and moved.max() > 0
    # a stored fit (the forecast path, evaluate) clips with its own bounds, fitted nowhere else
    stored = AnchorFit.from_json(fit.to_json(), "run")
    np.testing.assert_array_equal(stored.context_range, fit.context_range)
    np.testing.assert_array_equal(load_market(cfg, anchor_fit=stored).realized.numpy(), ctx)
    bad = {**fit.to_json(), "context_range": [[0.0] * 3, [1.0] * 3]}
    with pytest.raises(MigtError, match="context range of shape"):
        AnchorFit.from_json(bad, "run")
