"""Files as users have them: Databento exports with several contracts and rolls, 1-minute bars, naive local
bar-end timestamps, other sessions; and the messages that help when a file is not usable."""


import numpy as np
import pandas as pd
import pytest
import torch

import migt_train.data.build as build
from migt_train.data.schema import DataSchema
from migt_train.data import load_market
from migt_train.data.sources.aggregate import to_bar_size
from migt_train.data.sources.calendar import to_local
from migt_train.data.sources.ohlcv import read_ohlcv
from migt_train.data.synthetic import SyntheticConfig, generate
from migt_train.errors import MigtError

from data_helpers import OHLCV, data_cfg, small_bars, write_bars


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MIGT_CACHE_DIR", str(tmp_path / "cache"))


def _cfg(path, **kw):
    return data_cfg(source="ohlcv", path=str(path), synthetic=None, **kw)


@pytest.fixture(scope="module")
def minute_bars() -> pd.DataFrame:
    """14 Globex days of 1-minute bars (naive UTC bar starts)."""
    return generate(SyntheticConfig(seed=3, n_days=14), 1, "America/New_York", 18 * 60)[OHLCV].copy()


def _resample_5m(bars: pd.DataFrame) -> pd.DataFrame:
    """An independent 5-minute aggregation (pandas resample), as a vendor would deliver it."""
    g = bars.set_index("timestamp").resample("5min")
    out = pd.DataFrame({"open": g["open"].first(), "high": g["high"].max(), "low": g["low"].min(),
                        "close": g["close"].last(), "volume": g["volume"].sum()}).dropna()
    return out.reset_index()


# ---- several contracts, Databento style -------------------------------------------------------------------

ROLL_DAY = 7  # index of the trading day on which NQM4 first out-trades NQH4


def _databento_frame(minute_bars: pd.DataFrame) -> tuple[pd.DataFrame, pd.Timestamp]:
    """NQH4 and NQM4 interleaved (M4 trades 1% above H4), a spread, fixed-point prices, ns ts_event."""
    ts = minute_bars["timestamp"]
    day = (to_local(ts.to_numpy(), "America/New_York") + pd.Timedelta(hours=6)).normalize()
    day_no = pd.factorize(day)[0]
    parts = []
    for sym, iid, scale, vol in (("NQH4", 101, 1.0, np.where(day_no < ROLL_DAY, 1.0, 0.1)),
                                 ("NQM4", 102, 1.01, np.where(day_no < ROLL_DAY, 0.2, 1.0))):
        p = pd.DataFrame({"ts_event": ts.astype("int64").to_numpy(), "rtype": 33, "publisher_id": 1,
                          "instrument_id": iid, "symbol": sym})
        for c in ("open", "high", "low", "close"):
            # whole ticks of 0.25, in Databento's int64 units of 1e-9
            p[c] = (np.round(minute_bars[c].to_numpy() * scale * 4) / 4 * 1e9).astype(np.int64)
        p["high"] = p[["open", "high", "low", "close"]].max(axis=1)
        p["low"] = p[["open", "high", "low", "close"]].min(axis=1)
        p["volume"] = np.maximum(1, (minute_bars["volume"].to_numpy() * vol).round()).astype(np.int64)
        parts.append(p)
    spread = parts[0].iloc[::50].copy()
    spread["symbol"], spread["instrument_id"] = "NQH4-NQM4", 103
    spread[["open", "high", "low", "close"]] = -150 * 10**9  # spreads trade at (negative) differences
    frame = pd.concat(parts + [spread]).sort_values(["ts_event", "instrument_id"], kind="stable")
    # first trading day on NQM4: the day after the one on which it traded more
    first_m4_day = day.unique()[ROLL_DAY + 1]
    return frame.reset_index(drop=True), first_m4_day


def test_databento_two_contracts_roll(tmp_path, minute_bars):
    frame, first_m4_day = _databento_frame(minute_bars)
    path = tmp_path / "glbx-mdp3.ohlcv-1m.csv"
    frame.to_csv(path, index=False)
    data = load_market(_cfg(path))

    rolls = data.rolls
    assert rolls["contracts"] == ["NQH4", "NQM4"] and rolls["dropped_spreads"] > 0
    assert len(rolls["rolls"]) == 1
    roll = rolls["rolls"][0]
    assert (roll["from_contract"], roll["to_contract"]) == ("NQH4", "NQM4")
    assert roll["trading_day"] == str(first_m4_day.date())
    roll_ns = pd.Timestamp(roll["first_bar"]).tz_convert("UTC").tz_localize(None).value

    # prices: fixed-point converted, and the series switches contract at the roll (M4 is 1% above H4)
    ts = data.timestamps.astype(np.int64)
    close = data.features[:, 3].double().numpy()
    five = _resample_5m(minute_bars)
    ref = five.set_index("timestamp")["close"].reindex(pd.DatetimeIndex(data.timestamps)).to_numpy()
    after = ts >= roll_ns
    assert np.allclose(close[~after], np.round(ref[~after] * 4) / 4, atol=0.13)
    assert np.allclose(close[after], np.round(ref[after] * 1.01 * 4) / 4, atol=0.13)

    # no sample's window or target spans the roll
    rows = torch.cat(list(data.splits.values())).numpy()
    ws = data.window_start.numpy()
    max_h = max(data.horizons)
    side = lambda r: ts[r] >= roll_ns  # noqa: E731
    assert (side(ws[rows]) == side(rows)).all()
    assert (side(rows + max_h) == side(rows)).all()
    assert side(rows).any() and (~side(rows)).any()
    # each target is the contract's own return (one across the roll would be off by ~1%)
    for j, h in enumerate(data.horizons):
        own = np.log(ref[rows + h] / ref[rows])
        assert np.abs(data.targets[torch.as_tensor(rows), j].double().numpy() - own).max() < 1e-4


def test_databento_symbol_picks_one(tmp_path, minute_bars):
    frame, _ = _databento_frame(minute_bars)
    path = tmp_path / "export.parquet"
    frame.to_parquet(path, index=False)
    data = load_market(_cfg(path, symbol="NQM4"))
    assert (data.rolls["symbol"], data.rolls["contracts"], data.rolls["rolls"]) == ("NQM4", ["NQM4"], [])
    five = _resample_5m(minute_bars).set_index("timestamp")
    ref = np.round(five["close"].reindex(pd.DatetimeIndex(data.timestamps)).to_numpy() * 1.01 * 4) / 4
    assert np.allclose(data.features[:, 3].double().numpy(), ref, atol=0.13)
    with pytest.raises(MigtError, match=r"data.symbol=NQU4 not in the file \(its contracts: NQH4, NQM4\)"):
        load_market(_cfg(path, symbol="NQU4"))


def test_unrelated_symbols_ask_for_one(tmp_path):
    bars = small_bars(n_days=3)
    a, b = bars.assign(symbol="AAPL"), bars.assign(symbol="MSFT")
    path = write_bars(pd.concat([a, b]), tmp_path / "two.csv")
    with pytest.raises(MigtError, match=r"two\.csv: several instruments .*AAPL, MSFT.*data\.symbol=AAPL"):
        load_market(_cfg(path))


def test_duplicate_with_venues_hints_symbol(tmp_path):
    bars = small_bars(n_days=3)
    a, b = bars.assign(symbol="NQH4", publisher_id=1), bars.assign(symbol="NQH4", publisher_id=2)
    path = write_bars(pd.concat([a, b]), tmp_path / "venues.csv")
    with pytest.raises(MigtError, match=r"duplicate timestamps .*publisher_id.*data\.symbol"):
        read_ohlcv(path)


def test_dbn_file_equals_csv(tmp_path):
    import databento_dbn  # the [databento] extra; part of [dev] so this test always runs
    minute = generate(SyntheticConfig(seed=5, n_days=3), 1, "America/New_York", 18 * 60)[OHLCV]
    ts = minute["timestamp"].astype("int64").to_numpy()
    px = {c: (np.round(minute[c].to_numpy() * 4) / 4 * 1e9).astype(np.int64) for c in ("open", "high", "low", "close")}
    vol = minute["volume"].to_numpy().astype(np.int64)
    meta = databento_dbn.Metadata(dataset="GLBX.MDP3", schema=databento_dbn.Schema.OHLCV_1M, start=int(ts[0]),
                                  stype_in=databento_dbn.SType.RAW_SYMBOL, stype_out=databento_dbn.SType.INSTRUMENT_ID,
                                  end=int(ts[-1]), symbols=["NQH4"], partial=[], not_found=[], mappings=[])
    buf = bytearray(meta.encode())
    for i in range(len(ts)):  # building a test file record by record
        buf += bytes(databento_dbn.OHLCVMsg(0x21, 1, 101, int(ts[i]), int(px["open"][i]), int(px["high"][i]),
                                            int(px["low"][i]), int(px["close"][i]), int(vol[i])))
    dbn = tmp_path / "nq.ohlcv-1m.dbn"
    dbn.write_bytes(bytes(buf))
    csv = pd.DataFrame({"ts_event": ts, "rtype": 33, "publisher_id": 1, "instrument_id": 101, **px, "volume": vol})
    a = build.file_bars(dbn, DataSchema.from_config(_cfg(dbn)))
    b = build.file_bars(write_bars(csv, tmp_path / "nq.csv"), DataSchema.from_config(_cfg(tmp_path / "nq.csv")))
    pd.testing.assert_frame_equal(a.bars, b.bars)
    assert len(a.bars) == len(minute) // 5


# ---- aggregation and timestamps ---------------------------------------------------------------------------

def test_minute_bars_equal_preaggregated(tmp_path, minute_bars):
    one = load_market(_cfg(write_bars(minute_bars, tmp_path / "one.csv")))
    five = load_market(_cfg(write_bars(_resample_5m(minute_bars), tmp_path / "five.csv")))
    np.testing.assert_array_equal(one.timestamps, five.timestamps)
    assert torch.equal(one.features, five.features)
    assert torch.equal(one.targets.nan_to_num(), five.targets.nan_to_num())
    for k in one.splits:
        assert torch.equal(one.splits[k], five.splits[k])


def test_naive_local_bar_end_equals_offsets_and_starts(tmp_path, minute_bars):
    starts = minute_bars.copy()
    starts["timestamp"] = pd.DatetimeIndex(starts["timestamp"]).tz_localize("UTC").tz_convert("America/New_York").astype(str)
    ends = minute_bars.copy()
    ends["timestamp"] = (pd.DatetimeIndex(ends["timestamp"]) + pd.Timedelta(minutes=1)).tz_localize("UTC") \
        .tz_convert("Europe/Berlin").tz_localize(None).astype(str)
    a = load_market(_cfg(write_bars(starts, tmp_path / "offsets.csv")))
    b = load_market(_cfg(write_bars(ends, tmp_path / "naive_end.csv"), timezone="Europe/Berlin", timestamp_label="end"))
    np.testing.assert_array_equal(a.timestamps, b.timestamps)
    assert torch.equal(a.features, b.features)
    assert torch.equal(a.bar_in_day, b.bar_in_day) and torch.equal(a.day_of_week, b.day_of_week)


def test_buckets_follow_the_session_start():
    # 1-minute bars 09:30..15:59 New York -> 60-minute bars at 09:30, 10:30, ..., 15:30
    day = pd.date_range("2025-03-10 09:30", "2025-03-10 15:59", freq="1min", tz="America/New_York")
    ts = day.tz_convert("UTC").tz_localize(None).as_unit("ns")
    bars = pd.DataFrame({"timestamp": ts, "open": 1.0, "high": 2.0, "low": 0.5, "close": 1.5, "volume": 1.0})
    out, seg = to_bar_size(bars, np.zeros(len(bars), np.int64), 60 * 10**9, 60, "America/New_York", 9 * 60 + 30, "f")
    local = pd.DatetimeIndex(out["timestamp"]).tz_localize("UTC").tz_convert("America/New_York")
    assert [t.strftime("%H:%M") for t in local] == ["09:30", "10:30", "11:30", "12:30", "13:30", "14:30", "15:30"]
    assert out["volume"].tolist() == [60.0] * 6 + [30.0]


def test_regular_hours_session(tmp_path, minute_bars):
    """An equity-style file: 24 h of bars, data.session_* keep 09:30-16:00 New York and count bars from 09:30."""
    path = write_bars(minute_bars, tmp_path / "all_hours.csv")
    data = load_market(_cfg(path, session_start="09:30", session_end="16:00", lookback_hours=6.5, max_seq_len=78,
                            horizons=[1, 3, 6], split={"val_fraction": 0.2, "test_fraction": 0.2}))
    local = to_local(data.timestamps, "America/New_York")
    minutes = local.hour * 60 + local.minute
    assert minutes.min() >= 9 * 60 + 30 and minutes.max() <= 15 * 60 + 55
    assert int(data.bar_in_day.min()) == 0 and int(data.bar_in_day.max()) == 77


def test_24h_session_clock(tmp_path):
    """FX / crypto: a UTC day from 00:00; bar_in_day is the UTC bar of the day, the trading day the UTC date."""
    bars = small_bars(n_days=10)
    data = load_market(_cfg(write_bars(bars, tmp_path / "fx.csv"), session_tz="UTC", session_start="00:00"))
    ts = pd.DatetimeIndex(data.timestamps)
    assert (data.bar_in_day.numpy() == (ts.hour * 60 + ts.minute) // 5).all()
    assert (data.day_of_week.numpy() == ts.day_of_week).all() and (data.day_of_year.numpy() == ts.day_of_year).all()


def test_cache_keyed_by_bar_size(tmp_path, minute_bars, monkeypatch):
    path = write_bars(minute_bars, tmp_path / "one.parquet")
    five = load_market(_cfg(path, cache_dir=str(tmp_path / "c")))
    ten = load_market(_cfg(path, cache_dir=str(tmp_path / "c"), bar_minutes=10, max_seq_len=144, horizons=[3, 6]))
    assert len(list((tmp_path / "c").glob("features-*.parquet"))) == 2
    assert five.horizon_names[:2] == ["15m", "30m"] and ten.horizon_names == ["30m", "1h"]
    assert len(ten.timestamps) < len(five.timestamps)

    def boom(*_a, **_k):
        raise AssertionError("features recomputed")

    monkeypatch.setattr(build, "compute_features", boom)
    again = load_market(_cfg(path, cache_dir=str(tmp_path / "c")))
    assert torch.equal(again.features, five.features)
    # a finer bar size than the file's is refused, cached or not
    with pytest.raises(MigtError, match=r"coarser than data.bar_minutes=1"):
        load_market(_cfg(write_bars(_resample_5m(minute_bars), tmp_path / "five.parquet"), bar_minutes=1,
                         cache_dir=str(tmp_path / "c")))


# ---- messages ---------------------------------------------------------------------------------------------

def test_semicolon_file_hint(tmp_path):
    path = tmp_path / "euro.csv"
    small_bars(n_days=1).head(20).to_csv(path, sep=";", decimal=",", index=False)
    with pytest.raises(MigtError, match=r"euro\.csv: .*looks ';'-separated"):
        read_ohlcv(path)


def test_decimal_comma_hint(tmp_path):
    b = small_bars(n_days=1).head(20)
    b["close"] = b["close"].map(lambda x: f"{x:.2f}".replace(".", ","))
    path = write_bars(b, tmp_path / "commas.csv")
    with pytest.raises(MigtError, match=r"commas\.csv: column close has decimal commas \(e\.g\. '\d+,\d\d'\)"):
        read_ohlcv(path)


def test_minimum_size_is_stated(tmp_path):
    with pytest.raises(MigtError, match=r"tiny\.csv: too few bars \(50 rows\): the feature warm-up needs at least 73"):
        load_market(_cfg(write_bars(small_bars(n_days=1).head(50), tmp_path / "tiny.csv")))
    with pytest.raises(MigtError, match=r"short\.csv: too few bars \(300 rows\): need .* = 409"):
        load_market(_cfg(write_bars(small_bars(n_days=2).head(300), tmp_path / "short.csv")))


def test_split_all_is_for_scoring_only():
    from migt_train.data.build import check_data_config

    cfg = data_cfg(split={"by": "all"})
    with pytest.raises(MigtError, match=r"data.split.by': all is for scoring a trained run"):
        check_data_config(cfg)
    check_data_config(cfg, training=False)
    data = load_market(cfg)
    assert torch.equal(data.splits["train"], data.splits["test"]) and len(data.splits["test"]) > 0


def test_bad_new_keys():
    with pytest.raises(MigtError, match="data.timestamp_label"):
        load_market(data_cfg(timestamp_label="middle"))
    with pytest.raises(MigtError, match="data.timezone"):
        load_market(data_cfg(timezone="Europe/Atlantis"))
    with pytest.raises(MigtError, match="data.session_end"):
        load_market(data_cfg(session_end="25:00"))
