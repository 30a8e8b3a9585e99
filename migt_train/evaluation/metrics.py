"""Quantile-forecast metrics, shared by validation (every epoch) and the final test evaluation.

Nothing assumes symmetric levels: an interval pairs level i with level Q-1-i and its nominal
coverage is the difference of the two levels.
"""

from __future__ import annotations

from typing import Sequence

import torch


def level_key(tau: float) -> str:
    return f"{tau:g}"


def pinball(q: torch.Tensor, y: torch.Tensor, levels: torch.Tensor) -> torch.Tensor:
    """q (..., H, Q), y (..., H), levels (Q,) -> elementwise pinball loss (..., H, Q)."""
    diff = y.unsqueeze(-1) - q
    return torch.maximum(levels * diff, (levels - 1) * diff)


def crps_weights(levels: torch.Tensor) -> torch.Tensor:
    """Trapezoid weights over the levels, summing to 1: CRPS ~= 2 * sum_i w_i * pinball_i."""
    edges = torch.cat([levels[:1], (levels[1:] + levels[:-1]) / 2, levels[-1:]])
    w = edges[1:] - edges[:-1]
    return w / w.sum()


def _block(q: torch.Tensor, y: torch.Tensor, levels: torch.Tensor, taus: Sequence[float]) -> dict:
    """Metrics for q (N, H, Q), y (N, H) pooled over samples and the horizons given."""
    loss = pinball(q, y, levels)  # (N, H, Q)
    per_q = loss.mean(dim=(0, 1))
    cov = (y.unsqueeze(-1) <= q).double().mean(dim=(0, 1))  # (Q,)
    n_q = len(taus)
    intervals = []
    for i in range(n_q // 2):
        j = n_q - 1 - i
        inside = ((y >= q[..., i]) & (y <= q[..., j])).double().mean()
        intervals.append(
            {
                "lower": taus[i],
                "upper": taus[j],
                "nominal": round(taus[j] - taus[i], 10),
                "picp": float(inside),
                "mean_width": float((q[..., j] - q[..., i]).double().mean()),
            }
        )
    return {
        "pinball_loss": float(per_q.mean()),
        "crps": float(2 * (per_q * crps_weights(levels)).sum()),
        "calibration_error": float((cov - levels.double()).abs().mean()),
        "coverage": {level_key(t): float(c) for t, c in zip(taus, cov)},
        "intervals": intervals,
        "per_quantile_loss": {level_key(t): float(v) for t, v in zip(taus, per_q)},
    }


def quantile_metrics(
    q: torch.Tensor, y: torch.Tensor, levels: Sequence[float], horizon_names: Sequence[str]
) -> dict:
    """q (N, H, Q) and y (N, H) in the same units -> JSON-ready metrics dict.

    Keys: pinball_loss, crps, calibration_error (mean |coverage - tau| over levels and horizons),
    coverage {tau: frac y <= q_tau}, intervals [{lower, upper, nominal, picp, mean_width}],
    per_quantile_loss {tau: loss}, per_horizon {name: same keys, per horizon}.
    """
    q = q.detach().double()
    y = y.detach().double().to(q.device)
    taus = [float(t) for t in levels]
    lv = torch.tensor(taus, dtype=torch.float64, device=q.device)
    out = _block(q, y, lv, taus)
    # calibration_error averages |coverage - tau| per horizon, not of the pooled coverage
    per_h = {name: _block(q[:, h : h + 1], y[:, h : h + 1], lv, taus) for h, name in enumerate(horizon_names)}
    out["calibration_error"] = sum(m["calibration_error"] for m in per_h.values()) / len(per_h)
    out["per_horizon"] = per_h
    return out
