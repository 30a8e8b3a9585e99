"""Reversible instance normalisation over the valid steps of each window."""

from __future__ import annotations

import torch
from torch import nn


class RevIN(nn.Module):
    """Per sample and variable standardisation over valid steps, with a learnable affine.

    (B, T, V) values, (B, T) mask -> normalised (B, T, V) (zero on padded steps), stats (B, V, 2) =
    [window mean, log window std] so the caller can give the window's level and scale back to the model.
    """

    def __init__(self, n_variables: int, eps: float = 1e-5, log_eps: float = 1e-4):
        super().__init__()
        self.eps = eps
        self.log_eps = log_eps
        self.weight = nn.Parameter(torch.ones(n_variables))
        self.bias = nn.Parameter(torch.zeros(n_variables))

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        m = mask.unsqueeze(-1).to(x.dtype)
        x = torch.where(mask.unsqueeze(-1), x, 0.0)  # padded values never reach any arithmetic
        n = m.sum(1, keepdim=True).clamp_min(1.0)
        mean = x.sum(1, keepdim=True) / n
        var = ((x - mean).square() * m).sum(1, keepdim=True) / n
        x = (x - mean) * torch.rsqrt(var + self.eps) * self.weight + self.bias
        stats = torch.stack([mean.squeeze(1), 0.5 * torch.log(var.squeeze(1) + self.log_eps)], dim=-1)
        return x * m, stats
