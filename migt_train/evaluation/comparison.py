"""The model against its baselines on the same test samples: best baseline, skill, and a paired
circular-block-bootstrap interval of the loss difference.

The per-sample loss is the pinball loss averaged over levels (and horizons, for the overall figure),
so the mean of the per-sample differences is exactly L_model - L_baseline. Overlapping horizons make
neighbouring samples' losses dependent; resampling blocks as long as the longest horizon keeps that
dependence inside each block. The best baseline is the one with the lowest *test* pinball: a
reporting choice (which reference to beat), not a model selection.
"""

from __future__ import annotations

import logging
from typing import Any, Mapping, Sequence

import numpy as np
import torch

from migt_train.evaluation.metrics import pinball, quantile_metrics

log = logging.getLogger(__name__)

BOOTSTRAP_SAMPLES = 2000
BOOTSTRAP_SEED = 0
CI_LEVEL = 0.95
GATHER_ELEMENTS = 4_000_000  # values gathered at once by block_resample_means (32 MB of float64)


def per_sample_loss(q: torch.Tensor, y: torch.Tensor, levels: Sequence[float]) -> np.ndarray:
    """q (n, H, Q), y (n, H) -> (n, H) pinball loss averaged over levels."""
    q = q.detach().double().cpu()
    lv = torch.tensor([float(t) for t in levels], dtype=torch.float64)
    return pinball(q, y.detach().double().cpu(), lv).mean(-1).numpy()


def block_resample_means(d: np.ndarray, block: int, starts: np.ndarray) -> np.ndarray:
    """Means of circular block resamples of d (n, ...) -> (B, ...).

    starts (B, ceil(n / block)): each resample joins blocks d[s], d[s+1], ..., d[s+block-1]
    (indices mod n) and keeps its first n values, the last block cut short. Block sums come from one
    prefix sum of d extended circularly, so nothing is materialised per resample.
    """
    d = np.asarray(d, dtype=np.float64)
    n = len(d)
    n_blocks = starts.shape[1]
    if not 1 <= block <= n or n_blocks != -(-n // block):
        raise ValueError(f"need 1 <= block <= n and ceil(n / block) starts per resample (n {n}, block {block}, {n_blocks} starts)")
    ext = np.concatenate([d, d[:block]])
    c = np.concatenate([np.zeros((1, *d.shape[1:])), np.cumsum(ext, axis=0)])
    block_sum = c[block:block + n] - c[:n]  # (n, ...): the sum of the block starting at each row
    last = n - (n_blocks - 1) * block
    out = (c[starts[:, -1] + last] - c[starts[:, -1]]).astype(np.float64)  # (B, ...): the cut last block
    # the full blocks' sums are gathered a group of resamples at a time: (group, n_blocks - 1, ...) stays
    # a few tens of MB however many columns (e.g. one per baseline and horizon) d has
    width = max(1, int(np.prod(d.shape[1:], dtype=np.int64))) * max(1, n_blocks - 1)
    group = max(1, GATHER_ELEMENTS // width)
    for lo in range(0, len(starts), group):
        out[lo:lo + group] += block_sum[starts[lo:lo + group, :-1]].sum(axis=1)
    return out / n


def circular_block_bootstrap(
    d: np.ndarray, block: int, n_boot: int = BOOTSTRAP_SAMPLES, seed: int = BOOTSTRAP_SEED, level: float = CI_LEVEL
) -> tuple[np.ndarray, np.ndarray]:
    """Percentile interval of the mean of d (n, ...) -> (lo (...), hi (...)), one set of draws shared
    by every column so that per-horizon intervals come from the same resamples."""
    n = len(d)
    block = max(1, min(int(block), n))
    starts = np.random.default_rng(seed).integers(0, n, size=(n_boot, -(-n // block)))
    means = block_resample_means(d, block, starts)
    a = (1.0 - level) / 2.0
    return np.quantile(means, a, axis=0), np.quantile(means, 1.0 - a, axis=0)



def one_sided_upper_bound(d: np.ndarray, block: int) -> float:
    """One-sided 95% upper bound of the mean of d (n,): the upper end of the two-sided 90% circular
    block-bootstrap interval. Below 0: the mean is negative beyond noise (d = new - reference losses)."""
    return float(circular_block_bootstrap(d, block, level=0.90)[1])

def baseline_metrics(
    preds: Mapping[str, torch.Tensor], y: torch.Tensor, levels: Sequence[float], horizon_names: Sequence[str],
    extra: Mapping[str, Mapping[str, Any]] | None = None,
) -> dict[str, dict]:
    """One quantile_metrics block per baseline (plus any extra keys, e.g. garch_t_tod's fit report)."""
    return {k: {**quantile_metrics(q, y, levels, horizon_names), **(extra or {}).get(k, {})} for k, q in preds.items()}


def compare_with_baselines(
    q: torch.Tensor,
    y: torch.Tensor,
    preds: Mapping[str, torch.Tensor],
    levels: Sequence[float],
    horizon_names: Sequence[str],
    block: int,
    n_boot: int = BOOTSTRAP_SAMPLES,
    seed: int = BOOTSTRAP_SEED,
) -> dict[str, dict[str, Any]]:
    """The model against every baseline on the same resamples -> {baseline: {loss_difference, ci95,
    skill, per_horizon: {name: {loss_difference, ci95, skill}}}}; differences are model - baseline, skill
    1 - L_model / L_baseline. The draws depend on (n, block, seed) only, so each baseline's interval is
    the one a comparison with that baseline alone gives."""
    model_loss = per_sample_loss(q, y, levels)  # (n, H)
    names = list(preds)
    base = {k: per_sample_loss(preds[k], y, levels) for k in names}
    # per baseline: overall, then each horizon; all baselines in one bootstrap pass
    cols = np.column_stack([c for k in names for c in (np.column_stack([(model_loss - base[k]).mean(axis=1),
                                                                        model_loss - base[k]])).T])
    lo, hi = circular_block_bootstrap(cols, block, n_boot, seed)
    width = len(horizon_names) + 1
    m_loss = np.concatenate([[model_loss.mean()], model_loss.mean(axis=0)])

    def entry(j: int, ref: float, m: float) -> dict[str, Any]:
        return {"loss_difference": float(cols[:, j].mean()), "ci95": [float(lo[j]), float(hi[j])],
                "skill": 1.0 - m / ref if ref > 0 else None}

    out = {}
    for i, k in enumerate(names):
        ref = np.concatenate([[base[k].mean()], base[k].mean(axis=0)])
        j0 = i * width
        out[k] = {**entry(j0, ref[0], m_loss[0]),
                  "per_horizon": {h: entry(j0 + 1 + jh, ref[1 + jh], m_loss[1 + jh]) for jh, h in enumerate(horizon_names)}}
    return out


def compare_with_best_baseline(
    q: torch.Tensor,
    y: torch.Tensor,
    preds: Mapping[str, torch.Tensor],
    levels: Sequence[float],
    horizon_names: Sequence[str],
    block: int,
    n_boot: int = BOOTSTRAP_SAMPLES,
    seed: int = BOOTSTRAP_SEED,
) -> dict[str, Any]:
    """-> {best_baseline, skill_vs_best_baseline, comparison: {baseline, loss_difference, ci95, block,
    n_boot, per_horizon: {name: {loss_difference, ci95}}}, comparisons: compare_with_baselines(...)};
    differences are model - baseline."""
    comparisons = compare_with_baselines(q, y, preds, levels, horizon_names, block, n_boot, seed)
    # the lowest baseline loss is the largest model - baseline difference
    best = max(comparisons, key=lambda k: comparisons[k]["loss_difference"])
    c = comparisons[best]
    return {
        "best_baseline": best,
        "skill_vs_best_baseline": c["skill"],
        "comparison": {
            "baseline": best,
            "loss_difference": c["loss_difference"],
            "ci95": c["ci95"],
            "block": int(max(1, min(int(block), len(y)))),
            "n_boot": int(n_boot),
            "per_horizon": {h: {k: v[k] for k in ("loss_difference", "ci95")} for h, v in c["per_horizon"].items()},
        },
        "comparisons": comparisons,
    }


def log_comparison(metrics: Mapping[str, Any]) -> None:
    c = metrics["comparison"]
    best = metrics["baselines"][c["baseline"]]["pinball_loss"]
    log.info(
        "test pinball: model %.6g vs best baseline %s %.6g (skill %+.2f%%); model - baseline %.4g, 95%% CI [%.4g, %.4g] "
        "(circular block bootstrap, block %d bars, %d resamples)",
        metrics["test"]["pinball_loss"], c["baseline"], best, 100 * (metrics["skill_vs_best_baseline"] or 0.0),
        c["loss_difference"], c["ci95"][0], c["ci95"][1], c["block"], c["n_boot"],
    )
