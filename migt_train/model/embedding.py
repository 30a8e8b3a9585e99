"""Per-variable value embedding (optionally over patches of bars) and the window-scale embedding."""

from __future__ import annotations

import math

import torch
from torch import nn


class VariableEmbedding(nn.Module):
    """(B, T, V) normalised values, T a multiple of patch_len -> (V, B, T / patch_len, D).

    Each variable has its own projection of its patch of patch_len values (weight (V, P, D), bias
    (V, D)), plus a learned variable-identity embedding. patch_len 1 = one token per bar. Variable-major
    output: one batched matmul over contiguous operands (einsum on the strided (B, V, N, P) view falls
    off the BLAS path on CPU, ~1000x slower), and the temporal stage reshapes it to (V*B, N, D) free.
    """

    def __init__(self, n_variables: int, d_model: int, patch_len: int = 1):
        super().__init__()
        self.patch_len = patch_len
        self.weight = nn.Parameter(torch.randn(n_variables, patch_len, d_model) / math.sqrt(patch_len))
        self.bias = nn.Parameter(torch.zeros(n_variables, d_model))
        self.identity = nn.Parameter(torch.randn(n_variables, d_model) * 0.02)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, v = x.shape
        # one explicit copy to (V, B*N, P): bmm on the strided view copies each variable's matrix anyway
        patches = x.permute(2, 0, 1).reshape(v, b * t // self.patch_len, self.patch_len).contiguous()
        tokens = torch.bmm(patches, self.weight).view(v, b, t // self.patch_len, -1)
        return tokens + (self.bias + self.identity)[:, None, None, :]


class ScaleEmbedding(nn.Module):
    """(B, V, S) window statistics per variable (e.g. log std) -> (B, V, D), per-variable projection.

    RevIN removes each window's level and scale; this gives them back to the per-variable tokens so
    the forecast spread can follow the input volatility.
    """

    def __init__(self, n_variables: int, d_model: int, n_stats: int = 2):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(n_variables, n_stats, d_model) / math.sqrt(n_stats))
        self.bias = nn.Parameter(torch.zeros(n_variables, d_model))

    def forward(self, stats: torch.Tensor) -> torch.Tensor:
        return torch.einsum("bvs,vsd->bvd", stats, self.weight) + self.bias
