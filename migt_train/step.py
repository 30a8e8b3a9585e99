"""The one forward/loss step: a batch on the device -> the model's outputs and the training objective
(the loss on standardised targets). The trainer, inference, the step profiler and the bench all call
these, so every path computes the same numbers under the same autocast."""

from __future__ import annotations

from typing import Mapping

import torch
from torch import nn

from migt_train.data.market import BATCH_KEYS, TIME_KEYS, MarketData
from migt_train.runtime import Precision


def gather(data: MarketData, rows: torch.Tensor, device: torch.device) -> dict[str, torch.Tensor]:
    """The batch of sample `rows`, built where `data` lives and moved to `device`."""
    batch = data.batch(rows)
    return {k: batch[k].to(device, non_blocking=True) for k in BATCH_KEYS}


def forward(model: nn.Module, batch: Mapping[str, torch.Tensor], precision: Precision) -> dict[str, torch.Tensor]:
    """model(features, mask, time) under the run's autocast."""
    with precision.autocast():
        return model(batch["features"], batch["mask"], {k: batch[k] for k in TIME_KEYS})


def standardised_targets(model: nn.Module, y: torch.Tensor) -> torch.Tensor:
    """Targets in the units of `quantiles_std`: (y - target_mean) / target_std, float32."""
    return (y.float() - model.target_mean) / model.target_std


def loss_step(model: nn.Module, loss_fn: nn.Module, batch: Mapping[str, torch.Tensor],
              precision: Precision) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """Forward and the scalar training loss -> (outputs, loss)."""
    out = forward(model, batch, precision)
    loss = loss_fn(out["quantiles_std"], standardised_targets(model, batch["targets"])).loss
    return out, loss
