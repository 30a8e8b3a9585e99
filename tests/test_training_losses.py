import pytest
import torch

from migt_train.training import CombinedQuantileLoss, PinballLoss, QuantileCrossingPenalty

LEVELS = [0.05, 0.1, 0.25, 0.5, 0.75, 0.89, 0.94]


def _reference(q: torch.Tensor, y: torch.Tensor, levels: list[float]) -> torch.Tensor:
    out = torch.empty_like(q)
    for k, tau in enumerate(levels):
        d = y - q[..., k]
        out[..., k] = tau * d.clamp_min(0) + (1 - tau) * (-d).clamp_min(0)
    return out


def test_pinball_matches_formula_and_breakdowns():
    g = torch.Generator().manual_seed(0)
    q, y = torch.randn(16, 5, 7, generator=g), torch.randn(16, 5, generator=g)
    ref = _reference(q, y, LEVELS)
    assert torch.allclose(PinballLoss(LEVELS)(q, y), ref.mean(), atol=1e-6)
    out = CombinedQuantileLoss(LEVELS)(q, y)
    assert torch.allclose(out.loss, ref.mean(), atol=1e-6)
    assert torch.allclose(out.per_quantile, ref.mean(dim=(0, 1)), atol=1e-6)
    assert torch.allclose(out.per_horizon, ref.mean(dim=(0, 2)), atol=1e-6)
    assert isinstance(out.per_quantile, torch.Tensor) and out.per_horizon.shape == (5,)


def test_levels_are_a_buffer_that_moves_with_the_module():
    loss = CombinedQuantileLoss(LEVELS)
    assert "pinball.levels" in dict(loss.named_buffers())
    loss.to(torch.float64)
    assert loss.levels.dtype == torch.float64
    assert loss.quantiles == pytest.approx(LEVELS)


def test_crossing_penalty_soft_and_weighted():
    q = torch.tensor([[[0.0, 1.0, 0.5]]])  # level 2 below level 1 by 0.5
    assert QuantileCrossingPenalty()(q).item() == pytest.approx(0.25)  # mean over 2 adjacent pairs
    y = torch.zeros(1, 1)
    base = CombinedQuantileLoss([0.1, 0.5, 0.9])(q, y)
    weighted = CombinedQuantileLoss([0.1, 0.5, 0.9], crossing_weight=2.0)(q, y)
    assert weighted.loss.item() == pytest.approx(base.loss.item() + 0.5)
    assert base.crossing.item() == pytest.approx(0.25)


def test_loss_gradients_flow_and_bad_levels_rejected():
    q = torch.randn(4, 2, 3, requires_grad=True)
    CombinedQuantileLoss([0.1, 0.5, 0.9])(q, torch.randn(4, 2)).loss.backward()
    assert q.grad is not None and torch.isfinite(q.grad).all()
    with pytest.raises(ValueError):
        PinballLoss([0.5, 0.1])
    with pytest.raises(ValueError):
        PinballLoss([0.0, 0.5])
