"""evaluation.seasonal_blend: the weight fitted on val, its gate, the stored blend."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from scipy import stats

from migt_train.errors import MigtError
from migt_train.evaluation.metrics import pinball
from migt_train.evaluation.seasonal_blend import BLEND_FILE, WEIGHT_GRID, SeasonalBlend, read_blend, write_blend

SEED = 0  # a seed where the val-best weight is below 1 by chance
LEVELS = [0.05, 0.1, 0.25, 0.5, 0.75, 0.89, 0.94]
Z = torch.tensor(stats.norm.ppf(LEVELS), dtype=torch.float64)


def _case(n: int, seed: int, bars: int = 4, h: int = 2) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """y (n, H) ~ N(0, s_b^2) with a std per bar of day; bar_in_day (n,); the true table (bars, H, Q)."""
    g = torch.Generator().manual_seed(seed)
    s = torch.linspace(0.5, 2.0, bars, dtype=torch.float64)
    bid = torch.arange(n) % bars
    y = torch.randn(n, h, generator=g, dtype=torch.float64) * s[bid, None]
    table = (s[:, None, None] * Z).expand(bars, h, len(LEVELS)).clone()
    return y, bid, table


def _loss(q: torch.Tensor, y: torch.Tensor) -> float:
    return float(pinball(q, y, torch.tensor(LEVELS, dtype=torch.float64)).mean())


def test_a_better_seasonal_forecast_is_blended_in():
    """The model ignores the time of day (one pooled spread): the seasonal table is the truth, so the
    val-best weight is below 1, beyond noise, and the blend lowers the pinball on fresh samples too."""
    y, bid, table = _case(4000, seed=1)
    q_model = (1.25 * Z).expand(len(y), 2, len(LEVELS)).clone()
    b = SeasonalBlend.fit_on_val(q_model, y, bid, table, LEVELS, block=4)
    assert b.fit["applied"] and b.weight == b.fit["best_weight"] < 1.0
    assert b.fit["one_sided_95_bound"] < 0 and b.fit["val_pinball_blend"] < b.fit["val_pinball_model"]
    assert b.describe().startswith(f"seasonal blend: weight {b.weight:.2f}") and "applied" in b.describe()
    assert b.fit["val_loss_difference"] == pytest.approx(b.fit["val_pinball_blend"] - b.fit["val_pinball_model"])
    # the fitted weight is the grid's argmin of the val pinball, by hand
    hand = [_loss(w * q_model + (1 - w) * table[bid], y) for w in WEIGHT_GRID]
    assert b.weight == WEIGHT_GRID[int(np.argmin(hand))]
    y2, bid2, _ = _case(4000, seed=2)
    q2 = (1.25 * Z).expand(len(y2), 2, len(LEVELS))
    assert _loss(b.apply(q2, bid2), y2) < _loss(q2, y2)


def test_the_true_model_is_kept():
    """The model forecasts the true quantiles and the seasonal table is too narrow: weight 1, nothing applied."""
    y, bid, table = _case(2000, seed=3)
    q_model = table[bid].clone()
    b = SeasonalBlend.fit_on_val(q_model, y, bid, 0.5 * table, LEVELS, block=4)
    assert b.fit["best_weight"] == 1.0 and b.weight == 1.0 and not b.fit["applied"]
    assert b.fit["one_sided_95_bound"] is None and "the model alone is best on val" in b.describe()
    assert b.apply(q_model, bid) is q_model


def test_a_gain_within_noise_is_refused():
    """The seasonal table is the model's own forecast plus noise unrelated to y, on a short val split: the
    val-best weight is below 1 by chance, but the one-sided bound is not below 0, so the model is kept."""
    y, bid, table = _case(60, seed=5)
    q_model = table[bid]
    noisy = table + 0.05 * torch.randn(table.shape, generator=torch.Generator().manual_seed(SEED), dtype=torch.float64)
    b = SeasonalBlend.fit_on_val(q_model, y, bid, noisy.sort(-1).values, LEVELS, block=12)
    assert b.fit["best_weight"] < 1.0 and b.fit["val_pinball_blend"] < b.fit["val_pinball_model"]
    assert b.fit["one_sided_95_bound"] >= 0 and b.weight == 1.0 and not b.fit["applied"]
    assert "not beyond noise" in b.describe()


def test_apply_is_the_quantile_average():
    _, bid, table = _case(10, seed=0)
    b = SeasonalBlend(0.3, table, {})
    q = torch.randn(10, 2, len(LEVELS), dtype=torch.float32).sort(-1).values
    out = b.apply(q, bid)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out.double(), 0.3 * q.double() + 0.7 * table[bid], rtol=1e-6, atol=1e-7)
    assert (out.diff(dim=-1) >= 0).all()  # two increasing forecasts average to an increasing one


def test_stored_and_read_back(tmp_path):
    y, bid, table = _case(4000, seed=1)
    b = SeasonalBlend.fit_on_val((1.25 * Z).expand(len(y), 2, len(LEVELS)), y, bid, table, LEVELS, block=4)
    write_blend(tmp_path, b)
    back = read_blend(tmp_path)
    assert back.weight == b.weight and back.fit == b.fit
    torch.testing.assert_close(back.table, b.table)
    back.check_bars_per_day(4, "here")
    with pytest.raises(MigtError, match="seasonal table has 4 bars a day but the data has 288"):
        back.check_bars_per_day(288, "evaluation.seasonal_blend")


def test_bad_stored_blend_is_one_clear_error(tmp_path):
    with pytest.raises(MigtError, match=f"{BLEND_FILE}: not found"):
        read_blend(tmp_path)
    path = tmp_path / BLEND_FILE
    path.write_text("{not json")
    with pytest.raises(MigtError, match="cannot read"):
        read_blend(tmp_path)
    path.write_text(json.dumps({"version": 1, "weight": 0.5}))
    with pytest.raises(MigtError, match="not a seasonal blend.*table"):
        read_blend(tmp_path)
    path.write_text(json.dumps({"version": 1, "weight": 1.5, "table": [[[0.0]]]}))
    with pytest.raises(MigtError, match="weight in \\[0, 1\\]"):
        read_blend(tmp_path)
    path.write_text(json.dumps({"version": 9, "weight": 0.5, "table": [[[0.0]]]}))
    with pytest.raises(MigtError, match="version 9"):
        read_blend(tmp_path)


def test_empty_val_split_is_refused():
    _, _, table = _case(4, seed=0)
    with pytest.raises(MigtError, match="validation split is empty"):
        SeasonalBlend.fit_on_val(torch.zeros(0, 2, 7), torch.zeros(0, 2), torch.zeros(0, dtype=torch.long), table, LEVELS, 4)
