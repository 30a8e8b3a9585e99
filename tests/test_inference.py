"""One inference loop: validation during training and prediction afterwards give the same forecasts."""

import pytest
import torch

from migt_train.evaluation.metrics import quantile_metrics
from migt_train.training.inference import infer, predict
from migt_train.training.runtime import DistEnv, Precision, Runtime, init_distributed, seed_everything
from toys import LEVELS
from training_helpers import make_trainer


def _validation_equals_prediction(tmp_path, device: str, data=None, **cfg):
    t = make_trainer(tmp_path, data=data, max_epochs=1, device=device, **cfg)
    t.fit()
    val = t.validate("test")  # loss, metrics and the forecasts they score
    q = predict(t.model, t.data, t.data.splits["test"], batch_size=7, device=t.device, precision=t.precision)
    y = t.data.targets[t.data.splits["test"]]
    assert q.device.type == "cpu" and q.shape == (len(y), 5, len(LEVELS))
    assert torch.allclose(val.quantiles.cpu(), q, rtol=1e-5, atol=1e-7) and torch.equal(val.targets.cpu(), y)
    assert quantile_metrics(q, y, LEVELS, t.data.horizon_names)["pinball_loss"] == pytest.approx(
        val.metrics["pinball_loss"], rel=1e-6)
    again = infer(t.model, t.data, t.data.splits["test"], 64, t.device, t.precision, t.loss_fn)
    assert again.loss == pytest.approx(val.loss, rel=1e-9)


def test_validation_and_prediction_share_numerics(tmp_path, market):
    _validation_equals_prediction(tmp_path, "cpu", data=market)


@pytest.mark.gpu
def test_validation_and_prediction_share_autocast_on_cuda(tmp_path):
    _validation_equals_prediction(tmp_path, "cuda", mixed_precision=True, amp_dtype="bfloat16")


def test_runtime_without_torchrun_is_rank_0_of_1(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert init_distributed() == DistEnv(0, 1, 0)
    monkeypatch.setenv("WORLD_SIZE", "1")
    monkeypatch.setenv("RANK", "0")
    assert init_distributed(torch.device("cpu")) == DistEnv(0, 1, 0)  # one process: no group needed
    rt = Runtime.create("cpu", mixed_precision=True)
    assert rt.is_main and rt.precision == Precision("cpu", False, torch.float16)  # autocast acts on CUDA only


def test_seed_offset_by_rank():
    seed_everything(5)
    a = torch.rand(3)
    seed_everything(5, rank=1)
    b = torch.rand(3)
    seed_everything(4, rank=1)
    c = torch.rand(3)
    assert not torch.equal(a, b) and torch.equal(a, c)  # rank r draws the stream of seed + r
