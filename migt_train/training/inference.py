"""The one inference loop: validation during training and test/val prediction afterwards run the
same batches through the same step (step.py) under the same autocast."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from migt_train.utils import console
from migt_train.data.market import MarketData
from migt_train.training.runtime import Precision
from migt_train.training.step import forward, gather, standardised_targets


@dataclass
class Inference:
    quantiles: torch.Tensor  # (N, H, Q) float32, log-return units, on the model's device
    targets: torch.Tensor  # (N, H) float32, on the model's device
    loss: float | None  # mean training objective over the rows (when a loss_fn was given)


@torch.no_grad()
def infer(model: nn.Module, data: MarketData, rows: torch.Tensor, batch_size: int, device: torch.device | str,
          precision: Precision | None = None, loss_fn: nn.Module | None = None,
          progress: str | None = None) -> Inference:
    """Forecast the samples `rows` in batches of `batch_size` with the model in eval mode (its mode is
    restored afterwards, so this is safe mid-training). The model must already live on `device`.
    Results stay on the device: one host sync at the end (the loss), none per batch. `progress`: a
    label to show progress under (console.progress), None for none."""
    device = torch.device(device)
    precision = precision or Precision(device.type)
    rows = torch.as_tensor(rows, dtype=torch.long).cpu()
    data = data.to(device)  # resident on a GPU (a no-op when it already is, or on the CPU)
    was_training = model.training
    model.eval()
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    qs: list[torch.Tensor] = []
    ys: list[torch.Tensor] = []
    chunks = rows.split(max(1, int(batch_size)))
    bar = console.progress(progress is not None, len(chunks), str(progress))
    try:
        for chunk in chunks:
            batch = gather(data, chunk, device)
            out = forward(model, batch, precision)
            if loss_fn is not None:
                res = loss_fn(out["quantiles_std"].float(), standardised_targets(model, batch["targets"], batch["instrument"]))
                loss_sum += res.loss.double() * len(chunk)
            qs.append(out["quantiles"].float())
            ys.append(batch["targets"].float())
            if bar is not None:
                bar.update(1)
    finally:
        model.train(was_training)
        if bar is not None:
            bar.close()
    if not qs:
        empty = torch.empty(0, len(data.horizons), 0, device=device)
        return Inference(empty, torch.empty(0, len(data.horizons), device=device), None)
    loss = float(loss_sum) / len(rows) if loss_fn is not None else None
    return Inference(torch.cat(qs), torch.cat(ys), loss)


def predict(model: nn.Module, data: MarketData, rows: torch.Tensor, batch_size: int = 512,
            device: torch.device | str = "cpu", precision: Precision | None = None,
            progress: str | None = None) -> torch.Tensor:
    """Forecast the samples `rows` -> (N, H, Q) float32 on the CPU, log-return units."""
    return infer(model, data, rows, batch_size, device, precision, progress=progress).quantiles.cpu()
