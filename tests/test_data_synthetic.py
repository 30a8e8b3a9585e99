
import numpy as np
import pandas as pd
import pytest
import torch

from migt_train.data import load_market
from migt_train.data.build import synthetic_config
from migt_train.data.sources.calendar import globex_bars, time_info, to_local
from migt_train.volatility.events import EVENT_CLASSES, event_bars, event_features
from migt_train.data.synthetic import STATE_COLUMNS, SyntheticConfig, SyntheticOracle, generate
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


def test_release_calendar_2024():
    ts, _ = globex_bars("2024-01-02", 260, 5, NY, 18 * 60)
    ev = event_bars(ts, 5)
    local = to_local(ts, NY)
    dates = {name: sorted({str(d) for d in local[ev == cid].date}) for cid, name in enumerate(EVENT_CLASSES, start=1)}
    assert dates["employment"][:3] == ["2024-01-05", "2024-02-02", "2024-03-01"]  # first Fridays
    assert dates["cpi"][:2] == ["2024-01-15", "2024-02-13"]  # first business day >= 13th (Jan 13 is a Saturday)
    assert len(dates["fomc"]) == 8 and dates["fomc"][0] == "2024-01-17"
    minute = np.asarray(local.hour * 60 + local.minute)
    assert (minute[(ev >= 1) & (ev <= 3)] == 510).all() and (minute[ev == 4] == 840).all()
    # known in advance: the count ahead is 1 on the bar before a release, recency jumps on the release bar
    feats = event_features(ev, [1, 3], 5)
    first = int(np.flatnonzero(ev == 1)[0])
    assert feats[first - 1, 0, 0] == 1 and feats[first - 2, 0, 0] == 0 and feats[first - 3, 1, 0] == 1
    assert feats[first - 1, 0, 3] == 0 and feats[first, 0, 3] == 1 and 0 < feats[first + 2, 0, 3] < 1


@pytest.fixture(scope="module")
def year_market() -> pd.DataFrame:
    return generate(SyntheticConfig(n_days=130, start="2024-01-02"), 5, NY, 18 * 60)


def test_releases_leverage_and_jumps_in_market(year_market):
    b = year_market
    ts = b["timestamp"].to_numpy()
    ev = event_bars(ts, 5)[1:]
    local = to_local(ts, NY)[1:]
    minute = np.asarray(local.hour * 60 + local.minute)
    r = np.diff(np.log(b["close"].to_numpy()))
    abs_r = np.abs(r)
    plain_830, plain_1400 = abs_r[(minute == 510) & (ev == 0)].mean(), abs_r[(minute == 840) & (ev == 0)].mean()
    assert abs_r[ev == 1].mean() > 2.5 * plain_830 and abs_r[ev == 2].mean() > 2.5 * plain_830
    assert abs_r[ev == 4].mean() > 2.0 * plain_1400
    assert plain_830 * 1.1 < abs_r[ev == 3].mean() < abs_r[ev == 1].mean()
    # leverage: the fast variance factor rises more after a fall than after a rise of the same size
    g = b["_garch_next"].to_numpy()
    u = r / np.sqrt(b["_bar_var"].to_numpy()[1:] * np.exp(b["_sv"].to_numpy()[1:]) * g[:-1])
    ratio = g[1:] / g[:-1]
    assert ratio[u < -1.5].mean() > ratio[u > 1.5].mean() + 0.1
    # jumps: the same seed without jumps differs exactly on about jump_prob of the bars
    calm = generate(SyntheticConfig(n_days=130, start="2024-01-02", jump_prob=0.0), 5, NY, 18 * 60)
    diff = np.abs(r - np.diff(np.log(calm["close"].to_numpy())))  # rounding aside, the jumps
    n_jumps = int((diff > 1e-10).sum())
    assert 0.3 * 0.0005 * len(b) < n_jumps < 3 * 0.0005 * len(b)
    assert np.median(diff[diff > 1e-10] / abs_r.mean()) > 2  # and they are large


def test_oracle_knows_releases_leverage_and_jumps(year_market):
    b = year_market
    cfg = SyntheticConfig(n_days=130, start="2024-01-02")
    state = [b[c].to_numpy() for c in STATE_COLUMNS]
    oracle = SyntheticOracle(*state, [1, 3], cfg, 5)
    ev = event_bars(b["timestamp"].to_numpy(), 5)
    before = np.flatnonzero(ev == 1) - 1  # the bar before a payrolls release: its 5-minute forecast
    q = oracle.quantiles(np.concatenate([before, before - 276]), [0.05, 0.95])  # same bar, a day earlier
    width = q[:, 0, 1] - q[:, 0, 0]
    assert np.median(width[: len(before)] / width[len(before):]) > 3
    # leverage: after a fall the next-bar forecast is wider than after a rise, relative to the slow state
    r = np.diff(np.log(b["close"].to_numpy()))
    rows = np.arange(1, len(b) - 1)
    q1 = oracle.quantiles(rows, [0.05, 0.95])[:, 0]
    rel = (q1[:, 1] - q1[:, 0]) / np.sqrt(b["_bar_var"].to_numpy()[rows + 1] * np.exp(b["_sv"].to_numpy()[rows]))
    g_prev = b["_garch_next"].to_numpy()[rows - 1]
    u = r[rows - 1] / np.sqrt(b["_bar_var"].to_numpy()[rows] * np.exp(b["_sv"].to_numpy()[rows]) * g_prev)
    assert (rel / np.sqrt(g_prev))[u < -2].mean() > 1.05 * (rel / np.sqrt(g_prev))[u > 2].mean()
    # jumps widen the oracle's tails
    jumpy = SyntheticConfig(n_days=130, start="2024-01-02", jump_prob=0.05, jump_scale=8.0)
    calm = SyntheticConfig(n_days=130, start="2024-01-02", jump_prob=0.0)
    tails = [SyntheticOracle(*state, [3], c, 5).quantiles(rows[:500], [0.02, 0.98]) for c in (jumpy, calm)]
    assert np.mean(tails[0][..., 1] - tails[0][..., 0]) > 1.2 * np.mean(tails[1][..., 1] - tails[1][..., 0])


def test_oracle_knows_the_state_that_volume_leads_by():
    """data.synthetic.volume_lead_bars=L: bar t's returns have the state of bar t - L, its volume that of bar t.
    The oracle, which knows the path, stays calibrated at every horizon and beats the same oracle told there
    is no lead (which carries the state forward from the wrong bar)."""
    from dataclasses import replace

    cfg = SyntheticConfig(n_days=40, sv_persistence=0.95, sv_std=1.5, volume_lead_bars=6, oracle_paths=400)
    bars = generate(cfg, 5, NY, 18 * 60)
    x = bars["_sv"].to_numpy()
    bid = pd.Series(pd.to_datetime(bars["timestamp"])).dt.hour.to_numpy()  # coarse time of day (UTC)
    dev = lambda v: v - pd.Series(v).groupby(bid).transform("mean").to_numpy()  # noqa: E731
    lv = np.log(bars["volume"].to_numpy())
    r2 = np.log(np.log(bars["close"]).diff().fillna(0).to_numpy() ** 2 + 1e-12)
    assert np.corrcoef(dev(lv), x)[0, 1] > 0.8  # volume shows x_t ...
    assert np.corrcoef(dev(r2)[6:], x[:-6])[0, 1] > np.corrcoef(dev(r2)[6:], x[6:])[0, 1] + 0.1  # ... returns x_{t-6}
    horizons = [1, 3, 12, 48]
    close = bars["close"].to_numpy()
    rows = np.arange(100, len(bars) - 48, 7)
    y = np.stack([np.log(close[rows + h] / close[rows]) for h in horizons], axis=1)
    state = [bars[c].to_numpy() for c in STATE_COLUMNS]
    right = SyntheticOracle(*state, horizons, cfg, 5).quantiles(rows, LEVELS)
    wrong = SyntheticOracle(*state, horizons, replace(cfg, volume_lead_bars=0), 5).quantiles(rows, LEVELS)
    cover = (y[..., None] <= right).mean(axis=0)
    np.testing.assert_allclose(cover, np.broadcast_to(LEVELS, cover.shape), atol=0.04)
    lv_t = torch.tensor(LEVELS, dtype=torch.float64)
    loss = lambda q: pinball(torch.from_numpy(q), torch.from_numpy(y), lv_t).mean(dim=(0, 2))  # noqa: E731
    assert (loss(right)[:2] < 0.97 * loss(wrong)[:2]).all(), (loss(right), loss(wrong))
