"""The one forward/loss step: a batch on the device -> the model's outputs and the training objective
(the loss on standardised targets). The trainer, inference, the step profiler and the bench all call
these, so every path computes the same numbers under the same autocast."""

from __future__ import annotations

from typing import Mapping

import torch
from torch import nn

from migt_train.data.market import BATCH_KEYS, TIME_KEYS, MarketData
from migt_train.training.runtime import Precision


def gather(data: MarketData, rows: torch.Tensor, device: torch.device) -> dict[str, torch.Tensor | None]:
    """The batch of sample `rows` (a host tensor), built where `data` lives and moved to `device`.

    On CUDA the market should be resident (`data.to(device)`, as the trainer and `infer` do): the
    row indices then go over in one pinned, asynchronous copy and the batch is gathered on the GPU.
    `mask` is None there when no window in the batch is padded (known on the host, no sync), so the
    model passes no attention mask and SDPA may pick its fastest (flash) kernel."""
    device = torch.device(device)
    cuda = device.type == "cuda"
    if cuda and data.features.device.type == "cuda":
        full = data.full_windows(rows)
        batch = data.batch(rows.pin_memory().to(device, non_blocking=True))
    else:
        full = False
        batch = data.batch(rows)
    out = {k: batch[k].to(device, non_blocking=cuda and batch[k].is_pinned()) for k in BATCH_KEYS}
    if cuda and full:
        out["mask"] = None
    return out


def forward(model: nn.Module, batch: Mapping[str, torch.Tensor], precision: Precision) -> dict[str, torch.Tensor]:
    """model(features, mask, time) under the run's autocast."""
    with precision.autocast():
        return model(batch["features"], batch["mask"], {k: batch[k] for k in TIME_KEYS})


def standardised_targets(model: nn.Module, y: torch.Tensor, instrument: torch.Tensor | None = None) -> torch.Tensor:
    """Targets in the units of `quantiles_std`: (y - target_mean) / target_std, float32; a pooled model's
    scaling has a row per instrument, read at each sample's `instrument`."""
    mean, std = model.target_mean, model.target_std
    if mean.dim() == 2:
        mean, std = mean[instrument], std[instrument]
    return (y.float() - mean) / std


def loss_step(model: nn.Module, loss_fn: nn.Module, batch: Mapping[str, torch.Tensor],
              precision: Precision) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """Forward and the scalar training loss -> (outputs, loss). `model` may be DDP-wrapped: the forward
    goes through the wrapper (gradient sync), the target scaling is read from the model inside."""
    out = forward(model, batch, precision)
    raw = getattr(model, "module", model)
    loss = loss_fn(out["quantiles_std"], standardised_targets(raw, batch["targets"], batch["instrument"])).loss
    return out, loss
