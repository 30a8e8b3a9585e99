"""Files that would be read wrongly without a word: times with and without offsets in one column, a file being
appended to, another separator, a long hole in the data, a bad tick; each is refused by name or reported."""

import logging

import numpy as np
import pandas as pd
import pytest
import torch

from migt_train.data import load_market
from migt_train.data.sources.ohlcv import read_ohlcv
from migt_train.errors import MigtError

from data_helpers import data_cfg, small_bars, write_bars


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MIGT_CACHE_DIR", str(tmp_path / "cache"))


def _cfg(path, **kw):
    return data_cfg(source="ohlcv", path=str(path), synthetic=None, **kw)


def _text(bars: pd.DataFrame) -> pd.DataFrame:
    out = bars.copy()
    out["timestamp"] = out["timestamp"].dt.strftime("%Y-%m-%d %H:%M:%S")
    return out


def test_naive_and_offset_times_in_one_column_are_refused(tmp_path):
    """Naive New York times followed by ones with offsets: reading the naive ones as UTC would shift them 5 h."""
    bars = small_bars(n_days=3)
    local = pd.DatetimeIndex(bars["timestamp"]).tz_localize("UTC").tz_convert("America/New_York")
    text = pd.Series(local.strftime("%Y-%m-%d %H:%M:%S"))
    with_offset = pd.Series(local.strftime("%Y-%m-%dT%H:%M:%S%z")).str.replace(r"(\d\d)(\d\d)$", r"\1:\2", regex=True)
    text[500:] = with_offset[500:]
    path = write_bars(bars.assign(timestamp=text), tmp_path / "mixed.csv")
    with pytest.raises(MigtError) as err:
        read_ohlcv(path, timezone="America/New_York")
    msg = str(err.value)
    assert "mixed.csv" in msg and "column timestamp" in msg and "row 500" in msg and with_offset[500] in msg
    assert "\n" not in msg
    # the same the other way round: the first naive row is named
    text2 = with_offset.copy()
    text2[7] = local[7].strftime("%Y-%m-%d %H:%M:%S")
    with pytest.raises(MigtError, match=r"row 7 "):
        read_ohlcv(write_bars(bars.assign(timestamp=text2), tmp_path / "mixed2.csv"), timezone="America/New_York")
    # all offsets, or none, still read
    a = read_ohlcv(write_bars(bars.assign(timestamp=with_offset), tmp_path / "aware.csv"))
    b = read_ohlcv(write_bars(bars.assign(timestamp=pd.Series(local.strftime("%Y-%m-%d %H:%M:%S"))),
                              tmp_path / "naive.csv"), timezone="America/New_York")
    np.testing.assert_array_equal(a["timestamp"].to_numpy(), bars["timestamp"].to_numpy())
    np.testing.assert_array_equal(b["timestamp"].to_numpy(), bars["timestamp"].to_numpy())


def test_last_line_without_newline_is_dropped_with_a_warning(tmp_path, caplog):
    """A file being appended to: its last line is still being written (volume 59 of a future 590)."""
    bars = _text(small_bars(n_days=1).head(30))
    path = tmp_path / "live.csv"
    text = bars.to_csv(index=False)
    path.write_text(text + "2024-01-02 01:30:00,15000.0,15001.0,14999.0,15000.5,59")
    with caplog.at_level(logging.WARNING):
        out = read_ohlcv(path)
    assert len(out) == 30
    np.testing.assert_array_equal(out["volume"].to_numpy(), bars["volume"].to_numpy())
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warned) == 1 and "live.csv" in warned[0] and "line 32" in warned[0]
    # a complete file (ending with its newline) loses nothing and says nothing
    caplog.clear()
    path.write_text(text)
    with caplog.at_level(logging.WARNING):
        assert len(read_ohlcv(path)) == 30
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    # CRLF line ends are complete lines too
    path.write_bytes(text.replace("\n", "\r\n").encode())
    assert len(read_ohlcv(path)) == 30


def test_tab_separated_file_names_its_separator(tmp_path):
    path = tmp_path / "tabs.csv"
    small_bars(n_days=1).head(20).to_csv(path, sep="\t", index=False)
    with pytest.raises(MigtError, match=r"tabs\.csv: .*tab-separated"):
        read_ohlcv(path)


def test_long_gap_is_a_segment_break(tmp_path, caplog):
    """Five weeks missing in the middle: no window or target spans the hole, and the log says where it is."""
    bars = small_bars(n_days=20)
    cut = len(bars) // 2
    later = bars.iloc[cut:].copy()
    later["timestamp"] = later["timestamp"] + pd.Timedelta(days=35)
    gappy = pd.concat([bars.iloc[:cut], later], ignore_index=True)
    with caplog.at_level(logging.INFO):
        data = load_market(_cfg(write_bars(gappy, tmp_path / "gap.parquet")))
    hole_end = np.datetime64(later["timestamp"].iloc[0])
    assert any("gap" in r.getMessage() and str(later["timestamp"].iloc[0])[:10] in r.getMessage()
               for r in caplog.records)
    ts = data.timestamps
    rows = torch.cat(list(data.splits.values())).numpy()
    after = ts[rows] >= hole_end
    assert after.any() and (~after).any()
    start = data.window_start.numpy()[rows]
    assert ((ts[start] >= hole_end) == after).all()  # no window reaches back over the hole
    last = rows + max(data.horizons)
    assert ((ts[np.minimum(last, len(ts) - 1)] >= hole_end) == after).all()  # no target reaches over it
    # the usual breaks (the daily halt, weekends) stay inside one segment: before the hole, the same market as
    # a file that ends there
    plain = load_market(_cfg(write_bars(bars.iloc[:cut], tmp_path / "plain.parquet")))
    n = len(plain.timestamps)
    assert torch.equal(data.features[:n], plain.features) and torch.equal(data.window_start[:n], plain.window_start)
    assert torch.equal(data.targets[:n].nan_to_num(), plain.targets.nan_to_num())


def test_extreme_bar_is_reported_with_its_time(tmp_path, caplog):
    bars = small_bars(n_days=12)
    bad = bars.copy()
    bad.loc[900, ["open", "high", "low", "close"]] *= 100  # a misplaced decimal point
    with caplog.at_level(logging.WARNING):
        load_market(_cfg(write_bars(bad, tmp_path / "tick.parquet")))
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warned) == 1 and "tick.parquet" in warned[0] and str(bars["timestamp"].iloc[900])[:16] in warned[0]
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        load_market(_cfg(write_bars(bars, tmp_path / "fine.parquet")))
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_a_file_without_data_ohlcv_is_not_ignored(tmp_path):
    """`python run.py data.path=FILE` keeps data=synthetic: training on the synthetic market would ignore the file."""
    path = write_bars(small_bars(n_days=1), tmp_path / "mine.csv")
    with pytest.raises(MigtError, match=r"data.path.*mine\.csv.*data=ohlcv"):
        load_market(data_cfg(path=str(path)))
