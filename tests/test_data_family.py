"""The synthetic family (data.synthetic.instruments > 1): correlated members, a leader, each with its own oracle."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from migt_train.data import load_market
from migt_train.data.pooled import PooledOracle, instrument_view
from migt_train.data.synthetic import SyntheticConfig, SyntheticOracle, generate
from migt_train.data.synthetic.family import FollowerOracle, generate_family, lead_columns, member_config
from migt_train.evaluation.metrics import pinball

from data_helpers import data_cfg

NY = "America/New_York"
LEVELS = [0.05, 0.25, 0.5, 0.75, 0.95]


@pytest.fixture(scope="module")
def family():
    cfg = SyntheticConfig(n_days=40, instruments=3, lead_bars=2)
    return cfg, generate_family(cfg, 5, NY, 18 * 60)


def _returns(frame):
    return np.diff(np.log(frame["close"].to_numpy()))


def test_one_member_is_the_single_market():
    # instruments = 1 is today's generator exactly; the family keys do not enter it
    a = generate(SyntheticConfig(n_days=5, seed=3), 5, NY, 1080)
    b = generate(SyntheticConfig(n_days=5, seed=3, common_shock_share=0.9, lead_bars=4), 5, NY, 1080)
    assert all(a[c].to_numpy().tobytes() == b[c].to_numpy().tobytes() for c in a.columns)


def test_members_share_volatility_and_follow_the_leader(family):
    cfg, frames = family
    r = [_returns(f) for f in frames]
    lagged = np.corrcoef(r[0][:-2], r[1][2:])[0, 1]  # syn1's shock of bar t repeats syn0's of t - 2
    assert lagged > 0.4 and abs(np.corrcoef(r[0], r[1])[0, 1]) < 0.05
    assert np.corrcoef(r[1], r[2])[0, 1] > 0.25  # followers move together
    sv = np.corrcoef(frames[0]["_sv"], frames[2]["_sv"])[0, 1]
    assert sv > 0.5  # the common volatility factor
    # each member has its own level: annual_vol grows with the member index
    assert np.std(r[0]) < np.std(r[1]) < np.std(r[2])
    assert member_config(cfg, 2).annual_vol == pytest.approx(cfg.annual_vol * 1.5)


def test_follower_oracle_is_calibrated_and_knows_the_leader(family):
    cfg, frames = family
    f, member, horizons = frames[1], member_config(cfg, 1), [1, 3, 6]
    state = (f["_bar_var"].to_numpy(), f["_sv"].to_numpy(), f["_garch_next"].to_numpy())
    knows = FollowerOracle(*state, f[lead_columns(2)].to_numpy(), horizons, member, 5)
    blind = FollowerOracle(*state, np.zeros((len(f), 0)), horizons, member, 5)  # the leader's shocks unknown
    rows = np.arange(200, len(f) - 10, 5)
    logc = np.log(f["close"].to_numpy())
    y = torch.tensor(np.stack([logc[rows + h] - logc[rows] for h in horizons], 1))
    q = torch.tensor(knows.quantiles(rows, LEVELS))
    coverage = (y[..., None] <= q).double().mean((0, 1)).numpy()
    assert np.abs(coverage - LEVELS).max() < 0.04
    lv = torch.tensor(LEVELS, dtype=torch.float64)
    sharp = pinball(q, y, lv).mean()
    assert sharp < 0.93 * pinball(torch.tensor(blind.quantiles(rows, LEVELS)), y, lv).mean()


def test_family_market_is_pooled_with_each_members_oracle(tmp_path):
    cfg = data_cfg(cache_dir=str(tmp_path), lookback_hours=4, max_seq_len=48, horizons=[1, 3, 6],
                   synthetic={"n_days": 12, "instruments": 3, "oracle_paths": 64}, cross_asset=True)
    data = load_market(cfg)
    assert data.instruments == ["syn0", "syn1", "syn2"] and isinstance(data.oracle, PooledOracle)
    assert isinstance(data.oracle.oracles["syn0"], SyntheticOracle)
    assert isinstance(data.oracle.oracles["syn2"], FollowerOracle)
    test = data.splits["test"]
    q = data.oracle.quantiles(test.numpy(), LEVELS)
    view = instrument_view(data, "syn2")
    own = view.oracle.quantiles(view.splits["test"].numpy(), LEVELS)
    assert np.array_equal(q[(data.instrument[test] == 2).numpy()], own)
    assert data.n_features == 24 + 3 * 3


def test_one_member_alone_is_its_rows_of_the_pooled_family(tmp_path):
    """data.synthetic.member=j: member j's single-instrument market, the same bars, splits and oracle as its
    rows of the pooled family (the single run the pooled one is compared with)."""
    syn = {"n_days": 12, "instruments": 3, "oracle_paths": 64}
    kw = dict(cache_dir=str(tmp_path), lookback_hours=4, max_seq_len=48, horizons=[1, 3, 6])
    pooled = instrument_view(load_market(data_cfg(**kw, synthetic=syn)), "syn1")
    alone = load_market(data_cfg(**kw, synthetic={**syn, "member": 1}))
    assert alone.n_instruments == 1
    assert torch.equal(alone.features, pooled.features)
    assert torch.equal(alone.targets.nan_to_num(7.0), pooled.targets.nan_to_num(7.0))  # NaN: no future
    for split in ("train", "val", "test"):
        assert torch.equal(alone.splits[split], pooled.splits[split])
    rows = alone.splits["test"].numpy()
    assert np.array_equal(alone.oracle.quantiles(rows, LEVELS), pooled.oracle.quantiles(rows, LEVELS))
