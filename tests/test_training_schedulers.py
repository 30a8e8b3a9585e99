import math

import pytest
import torch

from migt_train.training import ConstantScheduler, LinearWarmupScheduler, WarmupCosineScheduler


def _opt(lrs=(0.1,)):
    groups = [{"params": [torch.nn.Parameter(torch.zeros(1))], "lr": lr} for lr in lrs]
    return torch.optim.SGD(groups, lr=lrs[0])


def _cosine(base, eta_min, t_cur, t_i):
    return eta_min + (base - eta_min) * (1 + math.cos(math.pi * t_cur / t_i)) / 2


def test_linear_warmup_per_step_then_constant():
    opt = _opt((0.1, 0.02))
    s = LinearWarmupScheduler(opt, warmup_steps=10)
    for k in range(15):  # k optimizer steps taken; the next step uses base * min(k+1, W)/W
        expect = min(k + 1, 10) / 10
        assert s.get_last_lr() == pytest.approx([0.1 * expect, 0.02 * expect])
        s.step()
    s.epoch_end()
    assert s.get_last_lr() == pytest.approx([0.1, 0.02])


def test_warmup_cosine_with_restarts_matches_formula():
    base, eta = 0.1, 1e-3
    s = WarmupCosineScheduler(_opt((base,)), warmup_steps=3, t_0=2, t_mult=2, eta_min=eta)
    assert s.get_last_lr()[0] == pytest.approx(base / 3)
    s.step()
    s.epoch_end()  # still in warmup: the cosine clock does not start
    assert s.get_last_lr()[0] == pytest.approx(base * 2 / 3)
    s.step()
    s.step()
    assert s.get_last_lr()[0] == pytest.approx(base)  # warmup over; cosine epoch 0
    s.step()  # per-step calls after warmup leave lr alone
    assert s.get_last_lr()[0] == pytest.approx(base)
    # cycles of 2, 4, 8 epochs: (cosine epoch -> T_cur, T_i)
    expected = {1: (1, 2), 2: (0, 4), 3: (1, 4), 5: (3, 4), 6: (0, 8), 13: (7, 8), 14: (0, 16)}
    for e in range(1, 15):
        s.epoch_end()
        if e in expected:
            assert s.get_last_lr()[0] == pytest.approx(_cosine(base, eta, *expected[e])), e


def test_warmup_cosine_t_mult_one_and_no_warmup():
    s = WarmupCosineScheduler(_opt((1.0,)), warmup_steps=0, t_0=3, t_mult=1, eta_min=0.0)
    lrs = [s.get_last_lr()[0]]
    for _ in range(6):
        s.epoch_end()
        lrs.append(s.get_last_lr()[0])
    assert lrs == pytest.approx([_cosine(1.0, 0.0, e % 3, 3) for e in range(7)])


def test_state_dict_round_trip_restores_lr():
    s = WarmupCosineScheduler(_opt((0.1,)), warmup_steps=2, t_0=2, t_mult=2, eta_min=0.0)
    for _ in range(3):
        s.step()
    s.epoch_end()
    state = s.state_dict()
    fresh = WarmupCosineScheduler(_opt((0.1,)), warmup_steps=2, t_0=2, t_mult=2, eta_min=0.0)
    fresh.load_state_dict(state)
    assert fresh.get_last_lr() == pytest.approx(s.get_last_lr())
    s.epoch_end()
    fresh.epoch_end()
    assert fresh.get_last_lr() == pytest.approx(s.get_last_lr())


def test_constant_scheduler():
    s = ConstantScheduler(_opt((0.05,)))
    s.step()
    s.epoch_end()
    assert s.get_last_lr() == [0.05]
    assert s.state_dict()["step_count"] == 1
