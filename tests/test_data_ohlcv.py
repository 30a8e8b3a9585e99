import numpy as np
import pandas as pd
import pytest

from migt_train.data import load_market
from migt_train.data.sources.ohlcv import read_ohlcv
from migt_train.errors import MigtError

from data_helpers import data_cfg, small_bars, write_bars


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MIGT_CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def bars() -> pd.DataFrame:
    return small_bars(n_days=12)


def _ohlcv_cfg(path, **kw):
    return data_cfg(source="ohlcv", path=str(path), synthetic=None, **kw)


def test_csv_case_insensitive_and_tz(tmp_path, bars):
    df = bars.rename(columns={"timestamp": "Timestamp", "close": "CLOSE", "volume": "Volume"})
    # same instants written as New York wall-clock with offsets
    df["Timestamp"] = pd.DatetimeIndex(bars["timestamp"]).tz_localize("UTC").tz_convert("America/New_York").astype(str)
    out = read_ohlcv(write_bars(df, tmp_path / "bars.csv"))
    assert list(out.columns) == ["timestamp", "open", "high", "low", "close", "volume"]
    np.testing.assert_array_equal(out["timestamp"].to_numpy(), bars["timestamp"].to_numpy())
    np.testing.assert_allclose(out["close"].to_numpy(), bars["close"].to_numpy(), rtol=1e-12)


def test_parquet_naive_is_utc(tmp_path, bars):
    out = read_ohlcv(write_bars(bars, tmp_path / "bars.parquet"))
    assert out["timestamp"].dtype == np.dtype("datetime64[ns]")
    np.testing.assert_array_equal(out["timestamp"].to_numpy(), bars["timestamp"].to_numpy())


def test_load_market_from_file_with_gaps(tmp_path, bars):
    # a halt: 30 bars missing mid-session is legal
    gappy = bars.drop(index=range(1000, 1030)).reset_index(drop=True)
    data = load_market(_ohlcv_cfg(write_bars(gappy, tmp_path / "bars.parquet")))
    assert data.source == "ohlcv" and data.oracle is None
    assert data.features.shape[0] == len(gappy) - 72


def test_missing_volume_csv(tmp_path, bars):
    path = write_bars(bars.drop(columns="volume"), tmp_path / "novol.csv")
    with pytest.raises(MigtError, match=r"novol\.csv: missing column volume"):
        load_market(_ohlcv_cfg(path))


def test_high_below_low_counts_rows(tmp_path, bars):
    bad = bars.copy()
    rows = [10, 200, 333]
    bad.loc[rows, "high"] = bad.loc[rows, "low"] - 1.0
    with pytest.raises(MigtError) as err:
        load_market(_ohlcv_cfg(write_bars(bad, tmp_path / "bad.csv")))
    msg = str(err.value)
    assert "bad.csv" in msg and "high < max(open, close)" in msg and "3 rows" in msg and "row 10" in msg


def test_text_named_parquet(tmp_path):
    path = tmp_path / "fake.parquet"
    path.write_text("timestamp,open,high,low,close,volume\n")
    with pytest.raises(MigtError, match=r"fake\.parquet: not a readable parquet file"):
        load_market(_ohlcv_cfg(path))


def test_nonexistent_path(tmp_path):
    with pytest.raises(MigtError, match=r"nope\.parquet: file not found"):
        load_market(_ohlcv_cfg(tmp_path / "nope.parquet"))


def test_path_required():
    with pytest.raises(MigtError, match="data.path"):
        load_market(data_cfg(source="ohlcv", synthetic=None))


def _break(bars: pd.DataFrame, how: str) -> pd.DataFrame:
    b = bars.copy()
    if how == "duplicate":
        b.loc[5, "timestamp"] = b.loc[4, "timestamp"]
    elif how == "unsorted":
        b.loc[[5, 6], "timestamp"] = b.loc[[6, 5], "timestamp"].to_numpy()
    elif how == "nonpositive":
        b.loc[[7, 8], ["open", "low"]] = 0.0
    elif how == "negvol":
        b.loc[9, "volume"] = -1.0
    elif how == "nan":
        b.loc[[3, 4], "close"] = np.nan
    elif how == "unparseable":
        b["timestamp"] = b["timestamp"].astype(str)
        b.loc[2, "timestamp"] = "not a time"
    return b


@pytest.mark.parametrize(
    "how, pattern",
    [
        ("duplicate", r"duplicate timestamps \(1 row; first at row 5"),
        ("unsorted", r"timestamps not increasing \(1 row; first at row 6.*data\.sort=true"),
        ("nonpositive", r"non-positive prices \(2 rows"),
        ("negvol", r"negative volume \(1 row; first at row 9"),
        ("nan", r"NaN, inf or non-numeric values in close \(2 rows"),
        ("unparseable", r"unparseable or missing timestamps \(1 row; first at row 2"),
    ],
)
def test_validation_rules(tmp_path, bars, how, pattern):
    path = write_bars(_break(bars, how), tmp_path / f"{how}.csv")
    with pytest.raises(MigtError, match=pattern) as err:
        read_ohlcv(path)
    assert f"{how}.csv" in str(err.value)


def test_sort_true_sorts(tmp_path, bars):
    path = write_bars(_break(bars, "unsorted"), tmp_path / "unsorted.parquet")
    out = read_ohlcv(path, sort=True)
    assert (np.diff(out["timestamp"].to_numpy().astype(np.int64)) > 0).all()
    data = load_market(_ohlcv_cfg(path, sort=True))
    assert len(data.timestamps) == len(bars) - 72


def test_too_few_bars(tmp_path, bars):
    path = write_bars(bars.iloc[:300], tmp_path / "short.parquet")
    with pytest.raises(MigtError, match=r"short\.parquet: too few bars \(300 rows\)"):
        load_market(_ohlcv_cfg(path))


def test_bar_size_mismatch(tmp_path, bars):
    path = write_bars(bars, tmp_path / "five.parquet")
    with pytest.raises(MigtError, match=r"mostly 5 minutes apart, coarser than data.bar_minutes=1"):
        load_market(_ohlcv_cfg(path, bar_minutes=1))
    with pytest.raises(MigtError, match=r"5 minutes bars do not add up to data.bar_minutes=12"):
        load_market(_ohlcv_cfg(path, bar_minutes=12))


@pytest.mark.parametrize("unit", [10**9, 10**6, 10**3, 1])
def test_epoch_timestamps(tmp_path, bars, unit):
    b = bars.copy()
    b["timestamp"] = b["timestamp"].astype("int64") // unit
    out = read_ohlcv(write_bars(b, tmp_path / "epoch.csv"))
    np.testing.assert_array_equal(out["timestamp"].to_numpy(), bars["timestamp"].to_numpy())


def test_numeric_timestamps_not_epoch(tmp_path, bars):
    b = bars.copy()
    b["timestamp"] = np.arange(len(b)) + 45000.5  # spreadsheet day numbers
    with pytest.raises(MigtError, match=r"epoch\.csv: timestamp column is numeric but not epoch"):
        read_ohlcv(write_bars(b, tmp_path / "epoch.csv"))


def test_far_too_few_bars(tmp_path, bars):
    with pytest.raises(MigtError, match=r"tiny\.csv: too few bars \(50 rows\)"):
        load_market(_ohlcv_cfg(write_bars(bars.iloc[:50], tmp_path / "tiny.csv")))
