"""Temporal stage: per-variable self-attention over time (weights shared across variables) + pooling."""

from __future__ import annotations

import math

import torch
from torch import nn

from .attention import TransformerBlock


class TemporalEncoder(nn.Module):
    """(V, B, N, D) tokens, (B, N) mask or None (all valid) -> (V, B, N, D).

    Every variable's sequence is one attention batch row: (V*B, N, D). Keys at padded steps are masked,
    so valid steps never see padding; padded queries still have valid keys (a window has at least one
    valid step), so no row is fully masked and nothing turns NaN.
    """

    def __init__(self, d_model: int, n_heads: int, d_ff: int, dropout: float, n_layers: int):
        super().__init__()
        self.layers = nn.ModuleList(TransformerBlock(d_model, n_heads, d_ff, dropout) for _ in range(n_layers))
        self.norm = nn.LayerNorm(d_model)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        v, b, n, d = x.shape
        attn_mask = None
        if mask is not None:
            attn_mask = mask[None, :, None, None, :].expand(v, b, 1, 1, n).reshape(v * b, 1, 1, n)
        x = x.reshape(v * b, n, d)
        for layer in self.layers:
            x = layer(x, attn_mask)
        return self.norm(x).view(v, b, n, d)


class AttentionPooling(nn.Module):
    """(V, B, N, D), (B, N) mask or None -> (B, V, D): one learned query attends over the valid steps.

    score_t = q . (W_k x_t) / sqrt(D) and out = W_v (sum_t a_t x_t) + b_v, computed in that
    folded order (the softmax weights sum to 1), so no per-step key/value projection is materialised.
    The key has no bias: q . b_k would shift every score equally, which softmax cancels (a parameter
    without gradient also breaks DDP, which expects every parameter to get one).
    """

    def __init__(self, d_model: int):
        super().__init__()
        self.query = nn.Parameter(torch.randn(d_model) * 0.02)
        self.key = nn.Linear(d_model, d_model, bias=False)
        self.value = nn.Linear(d_model, d_model)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):  # type: ignore[no-untyped-def]
        state_dict.pop(prefix + "key.bias", None)  # checkpoints written while the key had a (dead) bias
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        w = self.key.weight.t() @ self.query / math.sqrt(x.shape[-1])  # (D,)
        scores = x @ w  # (V, B, N)
        if mask is not None:
            scores = scores.masked_fill(~mask, float("-inf"))
        pooled = (torch.softmax(scores, dim=-1).unsqueeze(-2) @ x).squeeze(-2)  # (V, B, D)
        return self.value(pooled.transpose(0, 1))
