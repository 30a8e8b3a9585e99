"""conf/ groups of the training package instantiate into working objects; the profiler helper runs."""

from pathlib import Path

import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from migt_train.training import (
    TRAINER_DEFAULTS, CombinedQuantileLoss, Trainer, TrainerConfig, load_checkpoint, step_time_split,
)
from toys import LEVELS, ToyQuantileModel
from training_helpers import make_market

CONF = Path(__file__).resolve().parents[1] / "conf"


def _load(group: str, name: str):
    return OmegaConf.load(CONF / group / f"{name}.yaml")


def test_trainer_defaults_match_the_config_group():
    cfg = OmegaConf.to_container(_load("trainer", "default"))
    assert cfg == TRAINER_DEFAULTS


@pytest.mark.parametrize("opt", ["adamw", "adam", "sgd"])
@pytest.mark.parametrize("sched", ["warmup_cosine", "linear_warmup", "constant"])
def test_optimizer_and_scheduler_groups_instantiate(opt, sched):
    p = [torch.nn.Parameter(torch.zeros(2))]
    optimizer = instantiate(_load("optimizer", opt))(p)
    scheduler = instantiate(_load("scheduler", sched))(optimizer)
    scheduler.step()
    scheduler.epoch_end()
    assert scheduler.get_last_lr()[0] > 0


@pytest.mark.parametrize("name, weight", [("pinball", 0.0), ("pinball_crossing", 0.1)])
def test_loss_groups_take_the_quantile_levels(name, weight):
    root = OmegaConf.create({"quantiles": _load("quantiles", "default"), "loss": _load("loss", name)})
    loss = instantiate(root.loss)
    assert isinstance(loss, CombinedQuantileLoss) and loss.quantiles == pytest.approx(LEVELS)
    assert loss.crossing_weight == weight


def test_hydra_built_trainer_checkpoint_loads_weights_only(tmp_path):
    data = make_market(n=200)
    cfg = OmegaConf.create({"optimizer": _load("optimizer", "adamw"), "scheduler": _load("scheduler", "warmup_cosine"),
                            "trainer": _load("trainer", "default")})
    trainer_cfg = {**OmegaConf.to_container(cfg.trainer), "max_epochs": 1, "progress": False, "device": "cpu"}
    torch.manual_seed(0)
    Trainer(ToyQuantileModel(), data, CombinedQuantileLoss(LEVELS), instantiate(cfg.optimizer),
            instantiate(cfg.scheduler), tmp_path, seed=1, levels=LEVELS, config=TrainerConfig.from_mapping(trainer_cfg),
            run_config=cfg).fit()
    ckpt = load_checkpoint(tmp_path / "checkpoints" / "last.pt")
    assert ckpt["config"]["trainer"]["batch_size"] == 128
    assert ckpt["optimizer"]["param_groups"][0]["betas"] == (0.9, 0.999) or list(ckpt["optimizer"]["param_groups"][0]["betas"]) == [0.9, 0.999]


def test_step_time_split():
    data = make_market(n=200)
    split = step_time_split(ToyQuantileModel(), data, batch_size=16, levels=LEVELS, steps=2, warmup=1, device="cpu")
    assert set(split) == {"data", "forward", "backward", "optimizer", "total", "samples_per_second"}
    assert all(v >= 0 for v in split.values()) and split["total"] == pytest.approx(
        split["data"] + split["forward"] + split["backward"] + split["optimizer"])
