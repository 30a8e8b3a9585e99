"""Conformal recalibration fixes a deliberately miscalibrated forecast."""

import torch

from migt_train.evaluation.conformal import ConformalShift
from migt_train.evaluation.metrics import quantile_metrics

LEVELS = [0.05, 0.1, 0.25, 0.5, 0.75, 0.89, 0.94]


def _case(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    y = torch.randn(n, 2, generator=g, dtype=torch.float64) * torch.tensor([1.0, 2.0]) + 0.3
    z = torch.special.ndtri(torch.tensor(LEVELS, dtype=torch.float64))
    q = 0.4 * z.expand(n, 2, 7)  # intervals far too narrow and biased low
    return q, y


def test_conformal_restores_coverage():
    q_val, y_val = _case(4000, 0)
    q_test, y_test = _case(4000, 1)
    cal = ConformalShift.fit(q_val, y_val, LEVELS)
    assert cal.shifts.shape == (2, 7) and cal.n_calibration == 4000
    names = ["a", "b"]
    raw_val = quantile_metrics(q_val, y_val, LEVELS, names)["calibration_error"]
    fixed_val = quantile_metrics(cal.apply(q_val), y_val, LEVELS, names)["calibration_error"]
    raw_test = quantile_metrics(q_test, y_test, LEVELS, names)
    fixed_test = quantile_metrics(cal.apply(q_test), y_test, LEVELS, names)
    assert raw_val > 0.1 and fixed_val < 0.002  # the order statistic hits each level within 1/(n+1)
    assert fixed_test["calibration_error"] < 0.03 < raw_test["calibration_error"]
    assert fixed_test["pinball_loss"] < raw_test["pinball_loss"]


def test_conformal_keeps_quantiles_sorted():
    q = torch.zeros(5, 1, 3)
    y = torch.tensor([[-5.0], [-4.0], [3.0], [4.0], [5.0]])
    cal = ConformalShift(torch.tensor([[1.0, 0.0, -1.0]]), 5)  # shifts that would cross
    out = cal.apply(q)
    assert (out.diff(dim=-1) >= 0).all()
    assert ConformalShift.fit(q, y, [0.1, 0.5, 0.9]).shifts.tolist() == [[-5.0, 3.0, 5.0]]
