"""Each metric against a value worked out by hand on a tiny case."""

import pytest
import torch

from migt_train.evaluation.metrics import crps_weights, pinball, quantile_metrics

LEVELS = [0.1, 0.5, 0.89]  # asymmetric on purpose: the interval is 0.10-0.89, nominal 0.79
# Three samples, one horizon. y - q per sample: [1.5, .5, -.5], [1, -1, -4], [3, 2, 1].
Q = torch.tensor([[[-1.0, 0.0, 1.0]], [[-3.0, -1.0, 2.0]], [[0.0, 1.0, 2.0]]])
Y = torch.tensor([[0.5], [-2.0], [3.0]])


@pytest.fixture(scope="module")
def m() -> dict:
    return quantile_metrics(Q, Y, LEVELS, ["15m"])


def test_pinball_elementwise():
    got = pinball(Q, Y, torch.tensor(LEVELS))[:, 0]
    # tau * (y-q) when y >= q else (1-tau) * (q-y)
    want = torch.tensor([[0.15, 0.25, 0.055], [0.1, 0.5, 0.44], [0.3, 1.0, 0.89]])
    assert torch.allclose(got, want)


def test_pinball_loss_and_per_quantile(m):
    assert m["per_quantile_loss"] == pytest.approx({"0.1": 0.55 / 3, "0.5": 1.75 / 3, "0.89": 1.385 / 3})
    assert m["pinball_loss"] == pytest.approx(3.685 / 9)


def test_crps_trapezoid(m):
    # cells around the levels: [0.1, 0.3], [0.3, 0.695], [0.695, 0.89] -> 0.2, 0.395, 0.195 of 0.79
    assert torch.allclose(crps_weights(torch.tensor(LEVELS, dtype=torch.float64)),
                          torch.tensor([0.2, 0.395, 0.195], dtype=torch.float64) / 0.79)
    assert m["crps"] == pytest.approx(2 * (0.55 * 0.2 + 1.75 * 0.395 + 1.385 * 0.195) / 3 / 0.79)


def test_coverage_and_calibration_error(m):
    # y <= q: sample 1 [F F T], sample 2 [F T T], sample 3 [F F F]
    assert m["coverage"] == pytest.approx({"0.1": 0.0, "0.5": 1 / 3, "0.89": 2 / 3})
    assert m["calibration_error"] == pytest.approx((0.1 + (0.5 - 1 / 3) + (0.89 - 2 / 3)) / 3)


def test_interval_asymmetric_nominal_picp_width(m):
    (iv,) = m["intervals"]
    assert (iv["lower"], iv["upper"], iv["nominal"]) == (0.1, 0.89, 0.79)
    assert iv["picp"] == pytest.approx(2 / 3)  # 0.5 in [-1, 1], -2 in [-3, 2], 3 not in [0, 2]
    assert iv["mean_width"] == pytest.approx((2 + 5 + 2) / 3)


def test_default_levels_interval_nominals():
    levels = [0.05, 0.1, 0.25, 0.5, 0.75, 0.89, 0.94]
    q = torch.linspace(-1, 1, 7).expand(4, 2, 7)
    ivs = quantile_metrics(q, torch.zeros(4, 2), levels, ["a", "b"])["intervals"]
    assert [(i["lower"], i["upper"], i["nominal"]) for i in ivs] == [(0.05, 0.94, 0.89), (0.1, 0.89, 0.79), (0.25, 0.75, 0.5)]


def test_calibration_error_is_per_horizon_mean():
    # Horizon a always covered, horizon b never: pooled coverage 0.5 would hide both errors.
    q = torch.zeros(2, 2, 1)
    y = torch.tensor([[-1.0, 1.0], [-1.0, 1.0]])
    m = quantile_metrics(q, y, [0.5], ["a", "b"])
    assert m["coverage"]["0.5"] == 0.5
    assert m["per_horizon"]["a"]["coverage"]["0.5"] == 1.0 and m["per_horizon"]["b"]["coverage"]["0.5"] == 0.0
    assert m["calibration_error"] == pytest.approx(0.5)
    assert m["per_horizon"]["a"]["pinball_loss"] == pytest.approx(0.5)
