"""Variable stage: attention across the V per-variable tokens, each block followed by a gated instance norm."""

from __future__ import annotations

import torch
from torch import nn

from .attention import TransformerBlock


class GatedInstanceNorm(nn.Module):
    """x (B, V, D), y = block output (B, V, D) -> x + sigmoid(W x + b) * (LN(y) - x)  (Lite Gate Unit)."""

    def __init__(self, d_model: int):
        super().__init__()
        self.norm = nn.LayerNorm(d_model)
        self.gate = nn.Linear(d_model, d_model)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return x + torch.sigmoid(self.gate(x)) * (self.norm(y) - x)


class VariableEncoder(nn.Module):
    """(B, V, D) -> (B, V, D): n_layers of [transformer block over variables -> gated instance norm]."""

    def __init__(self, d_model: int, n_heads: int, d_ff: int, dropout: float, n_layers: int):
        super().__init__()
        self.blocks = nn.ModuleList(TransformerBlock(d_model, n_heads, d_ff, dropout) for _ in range(n_layers))
        self.gates = nn.ModuleList(GatedInstanceNorm(d_model) for _ in range(n_layers))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block, gate in zip(self.blocks, self.gates):
            x = gate(x, block(x))
        return x
