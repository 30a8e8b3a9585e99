"""Pre-norm transformer block on `F.scaled_dot_product_attention`, shared by both attention stages."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class SelfAttention(nn.Module):
    """(N, L, D), optional key mask (N, 1, 1, L) bool True = attend -> (N, L, D).

    SDPA runs with dropout_p=0: on CPU a non-zero dropout_p forces the math path that materialises
    every L x L matrix; dropout is applied to the block's residual branch instead.
    """

    def __init__(self, d_model: int, n_heads: int):
        super().__init__()
        self.n_heads = n_heads
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.out = nn.Linear(d_model, d_model)

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor | None = None) -> torch.Tensor:
        n, l, d = x.shape
        # unbind(2) + transpose: the backward assembles d(qkv) with one stack, no extra permute copy
        q, k, v = (t.transpose(1, 2) for t in self.qkv(x).view(n, l, 3, self.n_heads, d // self.n_heads).unbind(2))
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)
        return self.out(y.transpose(1, 2).reshape(n, l, d))


class Dropout(nn.Dropout):
    """nn.Dropout whose keep mask is four 16-bit integers cut from each 64-bit random draw.

    The CPU generator's cost is per draw, so this is about 3x faster than `rand_like` (and than the
    `bernoulli_` behind F.dropout) on a 2-core CPU; the drop rate is p rounded to a multiple of 2^-16
    and the scale uses that rate, so the expectation is exact.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0:
            return x
        if x.is_cuda or self.p == 1:  # CUDA's dropout is fused already; p = 1 has no 16-bit threshold
            return F.dropout(x, self.p, True)
        dropped = round(self.p * 65536)
        n = x.numel()
        bits = torch.randint(-(2**63), 2**63 - 1, (-(-n // 4),), dtype=torch.int64).view(torch.int16)[:n]
        keep = bits.view(x.shape) >= dropped - 32768
        return x * keep.to(x.dtype).mul_(65536 / (65536 - dropped))


class FeedForward(nn.Sequential):
    """(..., D) -> (..., D): Linear -> GELU -> Linear."""

    def __init__(self, d_model: int, d_ff: int):
        super().__init__(nn.Linear(d_model, d_ff), nn.GELU(), nn.Linear(d_ff, d_model))


class TransformerBlock(nn.Module):
    """Pre-norm block (N, L, D) -> (N, L, D): x + drop(attn(LN x)), then x + drop(ffn(LN x))."""

    def __init__(self, d_model: int, n_heads: int, d_ff: int, dropout: float):
        super().__init__()
        self.norm1 = nn.LayerNorm(d_model)
        self.attn = SelfAttention(d_model, n_heads)
        self.norm2 = nn.LayerNorm(d_model)
        self.ffn = FeedForward(d_model, d_ff)
        self.dropout = Dropout(dropout)

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor | None = None) -> torch.Tensor:
        x = x + self.dropout(self.attn(self.norm1(x), attn_mask))
        return x + self.dropout(self.ffn(self.norm2(x)))
