import os

import numpy as np
import pandas as pd
import pytest
import torch

import migt_train.data.build as build
from migt_train.cli.bench import batch_throughput
from migt_train.data import FEATURE_NAMES, MarketData, load_market
from migt_train.data.sources.calendar import to_local
from migt_train.data.splits import make_splits
from migt_train.data.returns import horizon_name
from migt_train.errors import MigtError

from data_helpers import data_cfg, small_bars, write_bars


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MIGT_CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> MarketData:
    return load_market(data_cfg(cache_dir=str(tmp_path_factory.mktemp("cache"))))


def _assert_purged(data: MarketData) -> None:
    ws = data.window_start.numpy()
    max_h = max(data.horizons)
    names = ["train", "val", "test"]
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            ra, rb = data.splits[a].numpy(), data.splits[b].numpy()
            assert ra.max() < rb.min()
            # no later window reaches an earlier split's sample rows
            assert not np.isin(np.arange(ws[rb].min(), rb.max() + 1), ra).any()
            assert (ws[rb] > ra.max()).all()
            # no earlier target horizon reaches a later split's rows
            assert (ra + max_h < rb.min()).all()


def test_contract(data):
    assert data.features.dtype == torch.float32 and data.features.is_contiguous()
    assert data.features.shape[1] == 24 and data.feature_names == FEATURE_NAMES
    assert data.horizon_names == ["15m", "30m", "1h", "2h", "4h"]
    assert data.timestamps.dtype == np.dtype("datetime64[ns]")
    for k in ("train", "val", "test"):
        rows = data.splits[k]
        assert rows.dtype == torch.int64 and (rows[1:] > rows[:-1]).all() and len(rows) > 0
    assert data.source == "synthetic" and data.oracle is not None


def test_targets(data):
    close = data.features[:, FEATURE_NAMES.index("close")].double().numpy()
    y = data.targets.numpy()
    n = len(close)
    for j, h in enumerate(data.horizons):
        t = np.array([0, 500, n - h - 1])
        # close is float32 in the feature tensor: compare loosely; the targets come from float64 closes
        np.testing.assert_allclose(y[t, j], np.log(close[t + h] / close[t]), atol=2e-6)
        assert np.isnan(y[n - h :, j]).all() and np.isfinite(y[: n - h, j]).all()


def test_window_start_and_samples(data):
    ts = data.timestamps.astype(np.int64)
    ws = data.window_start.numpy()
    day = 24 * 3600 * 10**9
    for t in [0, 10, 300, 1000, 2000, len(ts) - 1]:
        inside = np.flatnonzero((ts > ts[t] - day) & (np.arange(len(ts)) >= t - 287) & (np.arange(len(ts)) <= t))
        assert ws[t] == inside[0]
    samples = np.concatenate([data.splits[k].numpy() for k in data.splits])
    assert (ts[samples] - day >= ts[0]).all()
    assert np.isfinite(data.targets.numpy()[samples]).all()
    # a full weekday window holds 276 bars (24 h minus the daily break)
    sizes = samples - ws[samples] + 1
    assert sizes.max() == 276 and sizes.min() >= 1


def test_time_info(data):
    local = to_local(data.timestamps, "America/New_York")
    minute = np.asarray(local.hour * 60 + local.minute)
    bid = data.bar_in_day.numpy()
    np.testing.assert_array_equal(bid, ((minute - 18 * 60) % 1440) // 5)
    trading_day = (local + pd.Timedelta(hours=6)).normalize()
    np.testing.assert_array_equal(data.day_of_week.numpy(), trading_day.day_of_week)
    np.testing.assert_array_equal(data.day_of_month.numpy(), trading_day.day)
    np.testing.assert_array_equal(data.day_of_year.numpy(), trading_day.day_of_year)
    assert data.day_of_week.max() <= 4  # trading days are weekdays only


def test_splits_purged(data):
    _assert_purged(data)
    n = sum(len(v) for v in data.splits.values())
    assert len(data.splits["train"]) > 0.6 * n


def test_splits_by_date(tmp_path):
    cfg = data_cfg(synthetic={"n_days": 20}, split={"by": "date", "val_start": "2024-01-18", "test_start": "2024-01-24 12:00"})
    d = load_market(cfg)
    _assert_purged(d)
    ny = to_local(d.timestamps, "America/New_York")
    assert ny[d.splits["train"].numpy()].max() < pd.Timestamp("2024-01-18")
    assert ny[d.splits["val"].numpy()].min() >= pd.Timestamp("2024-01-18")
    assert ny[d.splits["test"].numpy()].min() >= pd.Timestamp("2024-01-24 12:00")


def test_empty_split_is_named():
    with pytest.raises(MigtError, match=r"data.split: val split empty after purging.*val \d+ -> 0"):
        load_market(data_cfg(split={"val_fraction": 0.02}))
    with pytest.raises(MigtError, match="val_start"):
        load_market(data_cfg(split={"by": "date"}))


def test_make_splits_fraction_sizes():
    n = 1000
    ts = np.arange(n).astype("datetime64[m]").astype("datetime64[ns]")
    ws = np.maximum(np.arange(n) - 9, 0)
    out = make_splits(np.arange(20, 990), ts, ws, max_horizon=5, val_fraction=0.2, test_fraction=0.1)
    assert len(out["test"]) == 97 - 9 and len(out["val"]) == 194 - 9 - 5 and len(out["train"]) == 679 - 5


def test_batch(data):
    rows = torch.cat([data.splits["train"][:3], data.splits["test"][-2:]])
    b = data.batch(rows)
    T = data.max_seq_len
    assert b["features"].shape == (5, T, 24) and b["features"].dtype == torch.float32
    ws = data.window_start[rows]
    pos = rows[:, None] - T + 1 + torch.arange(T)
    assert torch.equal(b["mask"], pos >= ws[:, None])
    for i in range(5):
        m = b["mask"][i]
        assert torch.equal(b["features"][i, m], data.features[int(ws[i]) : int(rows[i]) + 1])
        assert (b["features"][i, ~m] == 0).all() and b["mask"][i, -1]
    assert torch.equal(b["targets"], data.targets[rows])
    assert batch_throughput(data, batch_size=32, n_batches=3) > 0


def test_hourly_bars():
    d = load_market(data_cfg(bar_minutes=60, max_seq_len=24, horizons=[1, 2, 4], synthetic={"n_days": 40}))
    assert d.horizon_names == ["1h", "2h", "4h"] and d.bars_per_day == 24
    assert d.bar_in_day.max() == 22
    assert d.batch(d.splits["val"][:4])["features"].shape == (4, 24, 24)
    _assert_purged(d)
    assert [horizon_name(h, 5) for h in (3, 6, 12, 18, 24, 48)] == ["15m", "30m", "1h", "90m", "2h", "4h"]
    assert horizon_name(1, 1) == "1m" and horizon_name(2, 90) == "3h"


def test_feature_cache_skips_computation(tmp_path, monkeypatch):
    cfg = data_cfg(cache_dir=str(tmp_path / "c"))
    first = load_market(cfg)
    assert len(list((tmp_path / "c").glob("features-*.parquet"))) == 1
    assert len(list((tmp_path / "c").glob("synthetic-*.parquet"))) == 1

    def boom(*_a, **_k):
        raise AssertionError("features recomputed")

    monkeypatch.setattr(build, "compute_features", boom)
    monkeypatch.setattr(build, "generate", boom)
    second = load_market(cfg)
    assert torch.equal(first.features, second.features)
    assert torch.equal(first.targets.isnan(), second.targets.isnan())
    assert torch.equal(first.targets.nan_to_num(), second.targets.nan_to_num())
    for k in first.splits:
        assert torch.equal(first.splits[k], second.splits[k])
    # other parameters are a different cache entry
    with pytest.raises(AssertionError, match="recomputed"):
        load_market(data_cfg(cache_dir=str(tmp_path / "c"), synthetic={"seed": 99}))


def test_ohlcv_cache_follows_file(tmp_path, monkeypatch):
    monkeypatch.setenv("MIGT_CACHE_DIR", str(tmp_path / "env_cache"))
    bars = small_bars(n_days=12)
    path = write_bars(bars, tmp_path / "bars.parquet")
    cfg = data_cfg(source="ohlcv", path=str(path), synthetic=None)
    a = load_market(cfg)
    assert len(list((tmp_path / "env_cache").glob("features-*.parquet"))) == 1
    bars.loc[len(bars) - 1, "volume"] += 1.0
    write_bars(bars, path)
    os.utime(path, ns=(1, 1))  # an edited file: new mtime -> new cache entry
    b = load_market(cfg)
    assert len(list((tmp_path / "env_cache").glob("features-*.parquet"))) == 2
    assert not torch.equal(a.features[:, -2], b.features[:, -2])


def test_bad_config_values():
    with pytest.raises(MigtError, match="data.source"):
        load_market(data_cfg(source="csv"))
    with pytest.raises(MigtError, match="data.bar_minutes"):
        load_market(data_cfg(bar_minutes=0))
    with pytest.raises(MigtError, match="data.horizons"):
        load_market(data_cfg(horizons=[3, -1]))
    with pytest.raises(MigtError, match="data.session_tz"):
        load_market(data_cfg(session_tz="Mars/Olympus"))
