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
    """Metrics for q (N, H, Q), y (N, H) pooled over samples and the horizons given, as 0-d tensors
    on q's device (read to the host once, by quantile_metrics)."""
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
                "picp": inside,
                "mean_width": (q[..., j] - q[..., i]).double().mean(),
            }
        )
    return {
        "pinball_loss": per_q.mean(),
        "crps": 2 * (per_q * crps_weights(levels)).sum(),
        "calibration_error": (cov - levels.double()).abs().mean(),
        "coverage": {level_key(t): c for t, c in zip(taus, cov)},
        "intervals": intervals,
        "per_quantile_loss": {level_key(t): v for t, v in zip(taus, per_q)},
    }


def _to_host(tree: object) -> object:
    """Every tensor leaf of `tree` -> float, through one device-to-host copy (one sync on CUDA)."""
    leaves: list[torch.Tensor] = []

    def collect(node: object) -> None:
        if isinstance(node, torch.Tensor):
            leaves.append(node.reshape(()))
        elif isinstance(node, dict):
            for v in node.values():
                collect(v)
        elif isinstance(node, list):
            for v in node:
                collect(v)

    collect(tree)
    values = iter(torch.stack(leaves).tolist()) if leaves else iter(())

    def rebuild(node: object) -> object:
        if isinstance(node, torch.Tensor):
            return next(values)
        if isinstance(node, dict):
            return {k: rebuild(v) for k, v in node.items()}
        if isinstance(node, list):
            return [rebuild(v) for v in node]
        return node

    return rebuild(tree)


def quantile_metrics(
    q: torch.Tensor, y: torch.Tensor, levels: Sequence[float], horizon_names: Sequence[str]
) -> dict:
    """q (N, H, Q) and y (N, H) in the same units -> JSON-ready metrics dict.

    Keys: pinball_loss, crps, calibration_error (mean |coverage - tau| over levels and horizons),
    coverage {tau: frac y <= q_tau}, intervals [{lower, upper, nominal, picp, mean_width}],
    per_quantile_loss {tau: loss}, per_horizon {name: same keys, per horizon}.
    Computed where q lives; the figures reach the host in one copy at the end.
    """
    q = q.detach().double()
    y = y.detach().double().to(q.device)
    taus = [float(t) for t in levels]
    lv = torch.tensor(taus, dtype=torch.float64, device=q.device)
    out = _block(q, y, lv, taus)
    # calibration_error averages |coverage - tau| per horizon, not of the pooled coverage
    per_h = {name: _block(q[:, h : h + 1], y[:, h : h + 1], lv, taus) for h, name in enumerate(horizon_names)}
    out["calibration_error"] = torch.stack([m["calibration_error"] for m in per_h.values()]).mean()
    out["per_horizon"] = per_h
    return _to_host(out)  # type: ignore[return-value]
