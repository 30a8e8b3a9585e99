
import numpy as np
import pandas as pd
import pytest
import torch

from migt_train.data import load_market
from migt_train.data.build import synthetic_config
from migt_train.data.calendar import time_info, to_local
from migt_train.data.synthetic import SyntheticConfig, generate
from migt_train.errors import MigtError
from migt_train.evaluation.metrics import pinball

from data_helpers import data_cfg

NY = "America/New_York"
LEVELS = [0.05, 0.1, 0.25, 0.5, 0.75, 0.89, 0.94]


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MIGT_CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def market() -> pd.DataFrame:
    return generate(SyntheticConfig(n_days=60, start="2024-02-26"), 5, NY, 18 * 60)  # spans the March DST switch


def test_same_seed_same_bytes(tmp_path):
    a = generate(SyntheticConfig(n_days=5, seed=3), 5, NY, 1080)
    b = generate(SyntheticConfig(n_days=5, seed=3), 5, NY, 1080)
    c = generate(SyntheticConfig(n_days=5, seed=4), 5, NY, 1080)
    for col in a.columns:
        assert a[col].to_numpy().tobytes() == b[col].to_numpy().tobytes()
    assert not np.array_equal(a["close"].to_numpy(), c["close"].to_numpy())
    # and the cached parquet files of two fresh caches are byte-identical
    files = []
    for sub in ("x", "y"):
        cfg = data_cfg(cache_dir=str(tmp_path / sub), synthetic={"n_days": 12, "seed": 3})
        load_market(cfg)
        files.append(sorted((tmp_path / sub).glob("synthetic-*.parquet")))
    assert len(files[0]) == 1 and files[0][0].name == files[1][0].name
    assert files[0][0].read_bytes() == files[1][0].read_bytes()


def test_globex_calendar(market):
    local = to_local(market["timestamp"].to_numpy(), NY)
    minute = local.hour * 60 + local.minute
    assert ((minute < 17 * 60) | (minute >= 18 * 60)).all()  # daily break
    assert not (local.day_of_week == 5).any()  # Saturday closed
    assert not ((local.day_of_week == 4) & (minute >= 17 * 60)).any()  # Friday after 17:00
    assert not ((local.day_of_week == 6) & (minute < 18 * 60)).any()  # Sunday before 18:00
    info = time_info(market["timestamp"].to_numpy(), NY, 18 * 60, 5)
    per_day = np.bincount(np.cumsum(info["bar_in_day"] == 0) - 1)
    assert (per_day == 276).all() and len(per_day) == 60
    assert info["bar_in_day"].max() == 275
    # the Sunday 18:00 bar opens Monday's session, also after the DST switch (UTC offset changes)
    sunday_open = (local.day_of_week == 6) & (minute == 18 * 60)
    assert sunday_open.sum() >= 8
    assert (info["day_of_week"][sunday_open] == 0).all() and (info["bar_in_day"][sunday_open] == 0).all()
    utc_hours = set(pd.DatetimeIndex(market["timestamp"][sunday_open]).hour)
    assert utc_hours == {22, 23}


def test_hourly_bars_calendar():
    bars = generate(SyntheticConfig(n_days=3), 60, NY, 1080)
    assert len(bars) == 3 * 23


def test_stylized_facts(market):
    o, h, l, c, v = (market[k].to_numpy() for k in ("open", "high", "low", "close", "volume"))
    assert 10_000 < c.min() and c.max() < 20_000
    assert (h >= np.maximum(o, c)).all() and (l <= np.minimum(o, c)).all() and (v >= 1).all()
    r = np.diff(np.log(c))
    local = to_local(market["timestamp"].to_numpy(), NY)[1:]
    minute = np.asarray(local.hour * 60 + local.minute)
    abs_r = np.abs(r)
    cash_open, midday = abs_r[minute == 570].mean(), abs_r[(minute >= 720) & (minute < 840)].mean()
    close_bump, night = abs_r[minute == 955].mean(), abs_r[(minute >= 0) & (minute < 120)].mean()
    assert cash_open > 2.5 * midday and midday > 2 * night and close_bump > 1.3 * midday
    # heavy tails and volatility clustering once the intraday pattern is divided out
    profile = pd.Series(abs_r).groupby(minute).transform("mean").to_numpy()
    u = r / profile
    kurt = np.mean((u - u.mean()) ** 4) / np.var(u) ** 2
    assert kurt > 5
    au = np.abs(u)
    assert np.corrcoef(au[:-1], au[1:])[0, 1] > 0.1
    daily = np.log(pd.Series(u * u).groupby(np.arange(len(u)) // 276).sum().to_numpy())
    assert np.corrcoef(daily[:-1], daily[1:])[0, 1] > 0.3  # and persists across days
    assert np.corrcoef(np.log(v[1:]), np.log(abs_r + 1e-6))[0, 1] > 0.2


def test_unknown_synthetic_key():
    with pytest.raises(MigtError, match="data.synthetic: unknown key n_dayz"):
        synthetic_config({"n_dayz": 3})
    assert synthetic_config(None) == SyntheticConfig()


def test_oracle_shape_and_order():
    data = load_market(data_cfg())
    n = len(data.timestamps)
    rows = np.array([0, 100, n - 49, n - 4, n - 1])
    q = data.oracle.quantiles(rows, LEVELS)
    assert q.shape == (5, 5, 7)
    assert np.isfinite(q[:3]).all() and (np.diff(q[:3], axis=-1) > 0).all()
    assert np.isnan(q[3, 1:]).all() and np.isfinite(q[3, 0]).all() and np.isnan(q[4]).all()
    # spread grows with the horizon and the answer is deterministic
    assert (np.diff(q[:3, :, -1] - q[:3, :, 0], axis=1) > 0).all()
    np.testing.assert_array_equal(q, data.oracle.quantiles(rows, LEVELS))


def test_oracle_beats_climatology_default_market():
    data = load_market(data_cfg(synthetic={"n_days": 160}))  # the default market
    test = data.splits["test"].numpy()
    assert len(test) > 5000
    q = torch.from_numpy(data.oracle.quantiles(test, LEVELS))
    y = data.targets[test].double()
    lv = torch.tensor(LEVELS, dtype=torch.float64)
    clim = torch.from_numpy(np.quantile(data.split_targets("train").double().numpy(), LEVELS, axis=0).T.copy())
    loss_oracle = pinball(q, y, lv).mean(dim=(0, 2))
    loss_clim = pinball(clim.expand(len(test), -1, -1), y, lv).mean(dim=(0, 2))
    gain = 1 - loss_oracle / loss_clim
    assert (gain > 0.05).all(), gain
    assert gain.mean() >= 0.08, gain
    # the oracle is calibrated on average over all samples
    rows = np.concatenate([data.splits[k].numpy() for k in ("train", "val", "test")])[::4]
    qa = data.oracle.quantiles(rows, LEVELS)
    cover = (data.targets[rows].numpy()[..., None] <= qa).mean(axis=(0, 1))
    np.testing.assert_allclose(cover, LEVELS, atol=0.03)
