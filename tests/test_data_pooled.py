"""Several instruments in one run: shared split boundaries in time, windows inside one instrument, cross inputs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from omegaconf import OmegaConf
from data_helpers import data_cfg, small_bars, write_bars

from migt_train.data import load_market
from migt_train.data.cross_asset import CROSS_FEATURES, CROSS_MOVE_LAGS, cross_block, cross_moves, cross_names
from migt_train.data.latest import SPLIT, latest_market
from migt_train.data.pooled import instrument_view
from migt_train.data.splits import NAMES, make_splits, pooled_splits
from migt_train.errors import MigtError
from migt_train.evaluation.from_run import cross_body

MINUTE = np.timedelta64(1, "m")


def _instrument(n: int, skip_every: int | None, offset_minutes: int = 0, seq: int = 10):
    """n bars at 1-minute steps (every skip_every-th minute missing), windows of seq bars, all rows samples."""
    minutes = np.arange(int(n * 1.5))
    if skip_every:
        minutes = minutes[minutes % skip_every != 0]
    minutes = minutes[:n] + offset_minutes
    ts = (np.datetime64("2024-01-02T00:00") + minutes * MINUTE).astype("datetime64[ns]")
    start = np.maximum(np.arange(n) - (seq - 1), 0)
    samples = np.arange(seq - 1, n - 6)
    return samples, ts, start


def test_pooled_splits_share_boundaries_in_time():
    parts = [_instrument(900, None), _instrument(800, 3), _instrument(700, 4, offset_minutes=90)]
    max_h = 5
    out = pooled_splits(parts, max_h, val_fraction=0.2, test_fraction=0.2, names=["A", "B", "C"])
    for i, a in enumerate(NAMES):
        for b in NAMES[i + 1:]:
            # in time, over every pair of instruments: targets of the earlier split end before the later split
            # starts, windows of the later split start after the earlier split's last sample
            first_b = min(ts[s[b][0]] for s, (_, ts, _) in zip(out, parts))
            last_a = max(ts[s[a][-1]] for s, (_, ts, _) in zip(out, parts))
            for s, (_, ts, start) in zip(out, parts):
                assert ts[s[a] + max_h].max() < first_b
                assert ts[start[s[b]]].min() > last_a
    # every instrument has every split, and the union of sample times is cut about 60/20/20
    sizes = np.array([[len(s[k]) for k in NAMES] for s in out]).sum(0)
    assert all(len(s[k]) for s in out for k in NAMES)
    assert abs(sizes[2] / sizes.sum() - 0.2) < 0.03


def test_one_instrument_is_make_splits():
    samples, ts, start = _instrument(1000, None)
    one = make_splits(samples, ts, start, max_horizon=5, val_fraction=0.2, test_fraction=0.1)
    # the row rule of make_splits, written out: purge h bars before each later split, a window after
    n = len(samples)
    n_test, n_val = round(n * 0.1), round(n * 0.2)
    raw = [samples[: n - n_test - n_val], samples[n - n_test - n_val: n - n_test], samples[n - n_test:]]
    assert np.array_equal(one["train"], raw[0][raw[0] + 5 < raw[1][0]])
    assert np.array_equal(one["val"], raw[1][(start[raw[1]] > raw[0][-1]) & (raw[1] + 5 < raw[2][0])])
    assert np.array_equal(one["test"], raw[2][start[raw[2]] > raw[1][-1]])


def test_empty_split_names_the_instrument():
    parts = [_instrument(900, None), _instrument(40, None)]
    with pytest.raises(MigtError, match=r"data.split: short: "):
        pooled_splits(parts, 5, names=["long", "short"])


def test_cross_block_is_each_instruments_bar_at_the_same_start():
    ts_a = np.array(["2024-01-02T00:00", "2024-01-02T00:01", "2024-01-02T00:02"], dtype="datetime64[ns]")
    ts_b = np.array(["2024-01-02T00:01", "2024-01-02T00:03"], dtype="datetime64[ns]")
    names = ["log_return", "other", "garman_klass"]
    xa = np.array([[1.0, 9, 10], [2, 9, 20], [3, 9, 30]])
    xb = np.array([[-1.0, 9, -10], [-2, 9, -20]])
    a, b = cross_block([ts_a, ts_b], [xa, xb], names)
    assert cross_names(["A", "B"]) == [f"{n}:{f}" for n in "AB" for f in (*CROSS_FEATURES, "present")]
    # A's rows: its own slot, then B's bar at the same start (absent -> zeros, presence 0)
    assert a.tolist() == [[1, 10, 1, 0, 0, 0], [2, 20, 1, -1, -10, 1], [3, 30, 1, 0, 0, 0]]
    assert b.tolist() == [[2, 20, 1, -1, -10, 1], [0, 0, 0, -2, -20, 1]]
    assert a.dtype == np.float32


def test_cross_moves_are_each_instruments_recent_bars():
    ts_a = np.array(["2024-01-02T00:00", "2024-01-02T00:01", "2024-01-02T00:02"], dtype="datetime64[ns]")
    ts_b = np.array(["2024-01-02T00:01", "2024-01-02T00:02"], dtype="datetime64[ns]")
    a, b = cross_moves([ts_a, ts_b], [np.array([1.0, 2, 3]), np.array([-1.0, -2])], lags=2)
    # A's rows: its own bar and the one before, then B's at the same start (none at 00:00: zeros)
    assert a.tolist() == [[1, 0, 0, 0], [2, 1, -1, 0], [3, 2, -2, -1]]
    assert b.tolist() == [[2, 1, -1, 0], [3, 2, -2, -1]]
    assert a.dtype == np.float32 and CROSS_MOVE_LAGS >= 2


# -- load_market on several files ------------------------------------------------------------------------


SMALL = dict(lookback_hours=4, max_seq_len=48, horizons=[1, 3, 6], synthetic=None, source="ohlcv")


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Two instruments' 5-minute bars over the same days; es misses every 7th bar (a quiet market)."""
    d = tmp_path_factory.mktemp("pooled")
    nq = small_bars(n_days=8, seed=1)
    es = small_bars(n_days=8, seed=2)
    es = es[np.arange(len(es)) % 7 != 3].reset_index(drop=True)
    return d, write_bars(nq, d / "nq.csv"), write_bars(es, d / "es.csv")


def _cfg(d, path, **kw):
    return data_cfg(**{**SMALL, "cache_dir": str(d / "cache"), "path": path, **kw})


def _same_market(a, b):
    for key in ("features", "targets", "window_start", "bar_in_day", "day_of_week", "vol_anchor", "instrument"):
        x, y = getattr(a, key), getattr(b, key)
        assert torch.equal(x.nan_to_num(7.0), y.nan_to_num(7.0)) and torch.equal(x.isnan(), y.isnan()), key
    assert all(torch.equal(a.splits[k], b.splits[k]) for k in ("train", "val", "test"))
    assert a.instruments == b.instruments and a.feature_names == b.feature_names
    assert np.array_equal(a.timestamps, b.timestamps)


def test_map_and_list_of_files_give_the_same_market(files):
    d, nq, es = files
    by_map = load_market(_cfg(d, {"nq": str(nq), "es": str(es)}, vol_anchor=True))
    by_list = load_market(_cfg(d, [str(nq), str(es)], vol_anchor=True))
    _same_market(by_map, by_list)
    assert by_map.instruments == ["nq", "es"] and set(by_map.anchor_fit) == {"nq", "es"}


def test_one_instrument_map_is_the_single_file_market(files):
    d, nq, _ = files
    one, single = load_market(_cfg(d, {"NQ": str(nq)}, vol_anchor=True)), load_market(_cfg(d, str(nq), vol_anchor=True))
    _same_market(one, single)
    assert one.instruments == [] and one.anchor_fit.to_json() == single.anchor_fit.to_json()


def test_each_instrument_is_its_own_market_with_shared_split_times(files):
    d, nq, es = files
    pooled = load_market(_cfg(d, {"nq": str(nq), "es": str(es)}, vol_anchor=True))
    alone = load_market(_cfg(d, str(es), vol_anchor=True))
    view = instrument_view(pooled, "es")
    # features, targets, windows and time are the file's own; the anchor is fitted on its own training bars
    for key in ("features", "targets", "window_start", "bar_in_day"):
        assert torch.equal(getattr(view, key).nan_to_num(7.0), getattr(alone, key).nan_to_num(7.0)), key
    train_es = view.splits["train"]
    assert view.anchor_fit.garch.omega != pooled.anchor_fit["nq"].garch.omega
    # the splits' boundaries are shared in time: es's test starts where the union's does, not where its own would
    first_test = min(pooled.timestamps[pooled.splits["test"].numpy()])
    assert view.timestamps[view.splits["test"][0]] >= first_test
    assert view.timestamps[int(train_es[-1]) + 6] < first_test


def test_cross_inputs_are_causal_and_mark_missing_bars(files, tmp_path):
    d, nq, es = files
    pooled = load_market(_cfg(d, {"nq": str(nq), "es": str(es)}, cross_asset=True))
    names = pooled.feature_names
    assert names[-6:] == ["nq:log_return", "nq:garman_klass", "nq:present", "es:log_return", "es:garman_klass", "es:present"]
    nq_view = instrument_view(pooled, "nq")
    present = nq_view.features[:, names.index("es:present")]
    assert 0.8 < float(present.mean()) < 0.9  # es misses every 7th bar: those are zeros, presence 0
    assert (nq_view.features[present == 0][:, names.index("es:log_return")] == 0).all()
    # a perturbation of es after time t changes nothing of any row at or before t (test period only, so the
    # training fits stay)
    bars = pd.read_csv(es)
    t = pd.Timestamp(pooled.timestamps[int(pooled.splits["test"][0])])
    after = pd.to_datetime(bars["timestamp"]) > t
    for col in ("open", "high", "low", "close"):
        bars.loc[after, col] *= 1.0 + 0.05 * np.sin(np.arange(after.sum()))
    bars["high"] = bars[["open", "high", "low", "close"]].max(axis=1)
    bars["low"] = bars[["open", "high", "low", "close"]].min(axis=1)
    moved = load_market(_cfg(d, {"nq": str(nq), "es": str(write_bars(bars, tmp_path / "es.csv"))}, cross_asset=True))
    upto = torch.from_numpy(pooled.timestamps <= np.datetime64(t.tz_localize(None)))
    assert torch.equal(pooled.features[upto], moved.features[upto])
    rows = pooled.splits["val"]
    assert torch.equal(pooled.batch(rows)["features"], moved.batch(rows)["features"])
    later = ~upto & (pooled.instrument == 0)
    assert not torch.equal(pooled.features[later], moved.features[later])  # nq's rows after t do see it
    # with the anchor the heads also see every instrument's recent moves: causal as well
    anchored, anchored_moved = (load_market(_cfg(d, {"nq": str(nq), "es": str(p)}, cross_asset=True, vol_anchor=True))
                                for p in (es, tmp_path / "es.csv"))
    assert anchored.n_cross == 2 * CROSS_MOVE_LAGS and anchored.realized.shape[1] > anchored.n_cross
    # the heads read the moves; the body's variables stay the instrument's own (no blurring of its frozen features)
    assert anchored.feature_names == names[:-6] and anchored.features.shape[1] == len(names) - 6
    assert torch.equal(anchored.realized[upto], anchored_moved.realized[upto])
    assert not torch.equal(anchored.realized[later], anchored_moved.realized[later])
    cross = instrument_view(anchored, "nq").realized[:, -anchored.n_cross:]
    assert (cross[present == 0][:, CROSS_MOVE_LAGS:] == 0).all()  # es's slot is empty where it has no bar
    # a pooled run trained before the heads-only rule (its model.n_variables counts the block) gets both back
    cfg = _cfg(d, {"nq": str(nq), "es": str(es)}, cross_asset=True, vol_anchor=True)
    both = load_market(cfg, cross_body=True)
    assert both.feature_names == names and torch.equal(both.features, pooled.features)
    assert torch.equal(both.realized, anchored.realized)
    run = OmegaConf.create({"data": cfg, "model": {"n_variables": len(names)}})
    assert cross_body(run) is True
    run.model.n_variables = len(names) - 6
    assert cross_body(run) is None


def test_latest_gives_every_instruments_latest_bar(files):
    d, nq, es = files
    cfg = _cfg(d, {"nq": str(nq), "es": str(es)}, cross_asset=True)
    latest = latest_market(cfg, last=2)
    rows = latest.splits[SPLIT]
    assert latest.instrument[rows].tolist() == [0, 0, 1, 1]
    for name, path in (("nq", nq), ("es", es)):
        end = pd.to_datetime(pd.read_csv(path)["timestamp"]).max()
        view = instrument_view(latest, name)
        assert pd.Timestamp(view.timestamps[int(view.splits[SPLIT][-1])]) == end.tz_localize(None)
    with pytest.raises(MigtError, match="lacks es"):
        latest_market(_cfg(d, {"nq": str(nq)}, cross_asset=True), instruments=["nq", "es"])
    alone = latest_market(_cfg(d, {"es": str(es)}), instruments=["nq", "es"])
    assert alone.instruments == ["nq", "es"] and set(alone.instrument.tolist()) == {1}


def test_bad_paths_are_one_error(files):
    d, nq, es = files
    with pytest.raises(MigtError, match="same name nq"):
        load_market(_cfg(d, [str(nq), str(nq)]))
    with pytest.raises(MigtError, match="instrument name"):
        load_market(_cfg(d, {"a b": str(nq)}))
    with pytest.raises(MigtError, match="cross_asset.*several instruments"):
        load_market(_cfg(d, str(nq), cross_asset=True))
    with pytest.raises(MigtError, match="file not found"):
        load_market(_cfg(d, {"nq": str(nq), "es": str(d / "missing.csv")}))


def test_a_file_of_two_products_gives_one_instrument_per_root(tmp_path):
    a, b = small_bars(n_days=8, seed=1), small_bars(n_days=8, seed=2)
    half = len(a) // 2
    a["symbol"] = np.where(np.arange(len(a)) < half, "NQH4", "NQM4")
    a.loc[half - 300: half, "volume"] *= 0  # the new contract takes over the volume before the roll
    b["symbol"] = "ESH4"
    both = pd.concat([a, b]).sort_values("timestamp", kind="stable")
    path = write_bars(both, tmp_path / "index_futures.csv")
    pooled = load_market(data_cfg(**{**SMALL, "cache_dir": str(tmp_path / "cache"), "path": str(path)}))
    assert pooled.instruments == ["ES", "NQ"]
    assert pooled.rolls["ES"]["contracts"] == ["ESH4"] and pooled.rolls["NQ"]["contracts"] == ["NQH4", "NQM4"]
    es = instrument_view(pooled, "ES")
    assert len(es.targets) == len(b) - 72  # its own bars after the feature warm-up
