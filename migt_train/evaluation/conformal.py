"""Conformalized quantile regression (one-sided, per horizon and level), fitted on validation.

Each quantile q_tau is shifted by a conformal quantile of the validation residuals y - q_tau, so
that P(y <= q_tau + shift) >= tau with finite-sample validity and is close to tau in practice.
Shifts differ per level, which could make quantiles cross; sorting restores monotonicity and
never increases pinball loss (the rearrangement argument of Chernozhukov et al., 2010).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import torch

from migt_train.errors import MigtError


@dataclass
class ConformalShift:
    shifts: torch.Tensor  # (H, Q) additive, log-return units
    n_calibration: int

    @classmethod
    def fit(cls, q_val: torch.Tensor, y_val: torch.Tensor, levels: Sequence[float]) -> "ConformalShift":
        """q_val (n, H, Q), y_val (n, H) from the validation split."""
        n = q_val.shape[0]
        if n == 0:
            raise MigtError("evaluation.conformal: the validation split is empty (0 rows)")
        resid = (y_val.double().unsqueeze(-1) - q_val.double()).sort(dim=0).values  # (n, H, Q)
        # The ceil((n+1) tau)-th smallest residual is the split-conformal order statistic.
        k = [min(n, max(1, math.ceil((n + 1) * float(t)))) - 1 for t in levels]
        idx = torch.tensor(k, dtype=torch.long)
        shifts = resid[idx, :, torch.arange(len(k))].T  # (H, Q)
        return cls(shifts.contiguous(), n)

    def apply(self, q: torch.Tensor) -> torch.Tensor:
        return (q.double() + self.shifts.to(q.device)).sort(dim=-1).values.to(q.dtype)
