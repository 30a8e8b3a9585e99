"""Batched inference: quantile forecasts in log-return units for any set of sample rows."""

from __future__ import annotations

import torch
from torch import nn

from migt_train.data.market import TIME_KEYS, MarketData


@torch.no_grad()
def predict(
    model: nn.Module,
    data: MarketData,
    rows: torch.Tensor,
    batch_size: int = 512,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """Forecast the samples `rows` -> (N, H, Q) float32 on the CPU, log-return units.

    The model must already live on `device`; batches are gathered where `data` lives and moved there.
    The model's train/eval mode is restored afterwards so this is safe to call mid-training.
    """
    rows = torch.as_tensor(rows, dtype=torch.long)
    was_training = model.training
    model.eval()
    out: list[torch.Tensor] = []
    try:
        for chunk in rows.split(max(1, int(batch_size))):
            b = {k: v.to(device, non_blocking=True) for k, v in data.batch(chunk).items()}
            pred = model(b["features"], b["mask"], {k: b[k] for k in TIME_KEYS})["quantiles"]
            out.append(pred.float().cpu())
    finally:
        model.train(was_training)
    if not out:
        return torch.empty(0, len(data.horizons), 0)
    return torch.cat(out)
