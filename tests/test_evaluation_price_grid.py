"""evaluation.price_tick: the tick found on the training closes, quantiles snapped to the grid, the stored grid."""

import json

import numpy as np
import pytest
import torch
from scipy.stats import norm

from migt_train.errors import MigtError
from migt_train.evaluation.metrics import quantile_metrics
from migt_train.evaluation.price_grid import GRID_FILE, PriceGrid, detect_tick, read_grid, share_on_grid, write_grid
from migt_train.evaluation.settings import parse_price_tick

LEVELS = [0.05, 0.25, 0.5, 0.75, 0.95]


def _walk(n: int, tick: float, seed: int = 0, start: float = 4000.0) -> np.ndarray:
    steps = np.random.default_rng(seed).integers(-3, 4, n)
    return start + tick * np.cumsum(steps)


def test_detect_tick_on_grids_and_off():
    # a 0.25 grid, and a 0.01 grid whose float differences are 0.009999999999990905-like
    assert detect_tick(_walk(5000, 0.25)) == (0.25, 1.0)
    tick, share = detect_tick(np.round(_walk(5000, 0.01, start=581.35), 2))
    assert tick == 0.01 and share == 1.0
    # continuous prices (the synthetic market) and ratio-adjusted futures are on no grid
    cont = 4000 * np.exp(np.cumsum(np.random.default_rng(1).normal(0, 1e-3, 5000)))
    assert detect_tick(cont)[0] is None
    adjusted = _walk(5000, 0.25)
    adjusted[:2500] *= 1.0137  # ratio back-adjustment before a roll
    assert detect_tick(adjusted)[0] is None
    assert share_on_grid(_walk(5000, 0.25), 0.5) < 0.9
    # one price in a hundred off the grid (bad prints): no grid
    noisy = _walk(5000, 0.25)
    noisy[::100] += 0.1
    tick, share = detect_tick(noisy)
    assert tick is None and share < 0.999


def test_snap_is_the_quantile_of_the_forecast_rounded_to_ticks():
    close = np.array([100.0, 100.0, 3650.0])
    q = torch.tensor(np.log([[[100.30 / 100, 100.37 / 100]], [[99.90 / 100, 100.0 / 100]], [[3650.4 / 3650, 3651.6 / 3650]]]),
                     dtype=torch.float32)
    grid = PriceGrid(0.25, "test", 1.0, applied=True)
    price = close[:, None, None] * np.exp(grid.snap(q, close).double().numpy())
    expected = np.array([[[100.25, 100.25]], [[100.0, 100.0]], [[3650.5, 3651.5]]])  # grid 0.25: 3650.4 -> 3650.5
    np.testing.assert_allclose(price, expected + 1e-3 * 0.25, rtol=0, atol=1e-6)
    assert PriceGrid(None, "test", 0.0).snap(q, close) is q  # no grid: untouched
    assert PriceGrid(0.25, "test", 1.0, applied=False).snap(q, close) is q  # refused on val: untouched


def test_snapping_gives_the_quantile_of_returns_on_a_coarse_grid():
    """Price changes are a continuous move rounded to whole ticks; the forecast is the continuous move's exact
    quantile. Snapped, it is the quantile of the rounded change: pinball loss falls, and its coverage brackets
    each level, P(y < q) <= tau <= P(y <= q), which the continuous forecast misses."""
    rng = np.random.default_rng(5)
    n, tick, close = 20000, 1.0, 3600.0
    sd = rng.uniform(0.6, 2.5, n)  # spread in ticks: a tick is coarse, many outcomes are exactly 0
    y_price = np.round(rng.standard_normal(n) * sd) * tick
    y = torch.as_tensor(np.log1p(y_price / close), dtype=torch.float32).view(n, 1)
    q = torch.as_tensor(np.log1p(sd[:, None] * norm.ppf(LEVELS) * tick / close), dtype=torch.float32).view(n, 1, -1)
    assert (y == 0).double().mean() > 0.2
    snapped = PriceGrid(tick, "test", 1.0, applied=True).snap(q, np.full(n, close))
    assert quantile_metrics(snapped, y, LEVELS, ["h"])["pinball_loss"] < quantile_metrics(q, y, LEVELS, ["h"])["pinball_loss"]
    tau = torch.tensor(LEVELS, dtype=torch.float64)

    def brackets(f: torch.Tensor) -> bool:
        on_point = torch.isclose(y.unsqueeze(-1).double(), f.double(), rtol=0, atol=0.01 * tick / close)  # within 1/100 tick: on the point
        below, at_or_below = ((y.unsqueeze(-1) <= f) & ~on_point).double().mean((0, 1)), (y.unsqueeze(-1) <= f).double().mean((0, 1))
        return bool(((below <= tau + 0.01) & (tau - 0.01 <= at_or_below)).all())

    assert brackets(snapped)


class _Market:
    """The fields decide_on_val reads: val rows, targets, closes, horizon names."""

    def __init__(self, y_ticks: np.ndarray, close: float = 3600.0):
        n = len(y_ticks)
        self.close = np.full(n, close)
        self.targets = torch.as_tensor(np.log1p(y_ticks / close), dtype=torch.float32).view(n, 1)
        self.splits = {"val": torch.arange(n)}
        self.horizon_names = ["h"]


@pytest.mark.parametrize("drift, applied", [(0.3, True), (0.0, False)])
def test_applied_only_where_val_gains_in_pinball_and_calibration(drift, applied):
    """The forecast is N(0, sd) ticks less 0.05 tick (its median just below 0, like the anchor's). Outcomes drift
    up by `drift` ticks: moving the median onto 0 then lowers both pinball and calibration error on val. Without
    drift the coverage of the grid points overshoots their levels, the calibration error rises: refused."""
    rng = np.random.default_rng(11)
    n, close = 20000, 3600.0
    sd = rng.uniform(0.6, 2.5, n)
    market = _Market(np.round(drift + rng.standard_normal(n) * sd), close)
    q = torch.as_tensor(np.log1p((sd[:, None] * norm.ppf(LEVELS) - 0.05) / close), dtype=torch.float32).view(n, 1, -1)
    grid = PriceGrid(1.0, "test", 1.0)
    grid.decide_on_val(q, market, LEVELS)
    v = grid.val
    assert grid.applied is applied and v["n_val"] == n
    assert v["pinball_on_grid"] < v["pinball_off_grid"]  # the grid quantile is the better one either way
    assert (v["calibration_on_grid"] <= v["calibration_off_grid"]) is applied
    assert ("quantiles snapped" in grid.describe()) is applied


def test_for_market_auto_explicit_and_errors():
    class Market:
        close = _walk(3000, 0.25)
        splits = {"train": torch.arange(2000)}

    assert PriceGrid.for_market("auto", Market).tick == 0.25
    assert PriceGrid.for_market("0.25", Market).source == "evaluation.price_tick"
    with pytest.raises(MigtError, match=r"evaluation.price_tick.*multiples of 0.1 "):
        PriceGrid.for_market(0.1, Market)
    Market.close = 4000 * np.exp(np.cumsum(np.random.default_rng(2).normal(0, 1e-3, 3000)))
    grid = PriceGrid.for_market("auto", Market)
    assert grid.tick is None and "none found" in grid.describe()
    Market.close = None
    with pytest.raises(MigtError, match="no close prices"):
        PriceGrid.for_market("auto", Market)


@pytest.mark.parametrize("value", ["abc", 0, -0.25, "nan", True])
def test_bad_setting_names_the_key(value):
    with pytest.raises(MigtError, match=r"config key 'evaluation.price_tick'"):
        parse_price_tick(value)


def test_settings_that_parse():
    assert parse_price_tick(None) is None and parse_price_tick("auto") == "auto" and parse_price_tick("0.25") == 0.25


def test_stored_grid_round_trips_and_bad_files(tmp_path):
    grid = PriceGrid(0.25, "found on the training closes", 0.9995, True, {"pinball_off_grid": 1.0, "n_val": 3})
    write_grid(tmp_path, grid)
    assert read_grid(tmp_path) == grid
    write_grid(tmp_path, PriceGrid(None, "found on the training closes", 0.1))
    assert read_grid(tmp_path).tick is None
    with pytest.raises(MigtError, match="not found.*price_tick"):
        read_grid(tmp_path / "nowhere")
    for bad, message in (({"version": 2, "tick": 1}, "version 2"), ({"version": 1}, "not a price grid"),
                         ({"version": 1, "tick": -1, "source": "x", "share_on_grid": 1, "applied": True, "val": None}, "must be positive")):
        (tmp_path / GRID_FILE).write_text(json.dumps(bad))
        with pytest.raises(MigtError, match=message):
            read_grid(tmp_path)
