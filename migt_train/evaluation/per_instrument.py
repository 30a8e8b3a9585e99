"""metrics.json `per_instrument` of a pooled run: each instrument's test rows scored on their own, against that
instrument's baselines fitted on its own training split (its market out of the pooled one: data.pooled)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from migt_train.data.market import MarketData
from migt_train.data.pooled import instrument_view, split_rows_of
from migt_train.evaluation.baselines import fit_baselines
from migt_train.evaluation.calibration_noise import calibration_noise
from migt_train.evaluation.comparison import baseline_metrics, compare_with_best_baseline
from migt_train.evaluation.metrics import quantile_metrics


def instrument_report(view: MarketData, q: torch.Tensor, levels: Sequence[float], ewma_halflife: float
                      ) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """One instrument's market and the forecasts q (n, H, Q) of its test rows -> (its metrics.json block:
    n_test_samples, test, baselines, best_baseline, skill_vs_best_baseline, comparison, calibration_noise,
    vs_baselines {name: skill, loss_difference, ci95}, skill_vs_climatology, and with an oracle: oracle,
    oracle_gap_closed; its baselines' test forecasts)."""
    test = view.splits["test"].cpu()
    y = view.targets[test].cpu()
    names = list(view.horizon_names)
    baselines = fit_baselines(view, levels, ewma_halflife)
    preds = {k: b.predict(test) for k, b in baselines.items()}
    reports = {k: b.report() for k, b in baselines.items() if hasattr(b, "report")}
    scored = quantile_metrics(q, y, levels, names)
    block: dict[str, Any] = {"n_test_samples": len(test), "test": scored,
                             "baselines": baseline_metrics(preds, y, levels, names, reports)}
    block.update(compare_with_best_baseline(q, y, preds, levels, names, block=max(view.horizons)))
    block["calibration_noise"] = calibration_noise(scored["calibration_error"], test.numpy(), view.horizons, levels)
    # skill against each baseline with its interval (the goals name garch_t_tod, which need not be the best)
    block["vs_baselines"] = {}
    for k, p in preds.items():
        c = compare_with_best_baseline(q, y, {k: p}, levels, names, block=max(view.horizons))
        block["vs_baselines"][k] = {"skill": c["skill_vs_best_baseline"], "loss_difference": c["comparison"]["loss_difference"],
                                    "ci95": c["comparison"]["ci95"]}
    l_clim = block["baselines"]["climatology"]["pinball_loss"]
    block["skill_vs_climatology"] = 1.0 - scored["pinball_loss"] / l_clim if l_clim > 0 else None
    if view.oracle is not None:
        q_or = torch.as_tensor(np.asarray(view.oracle.quantiles(test.numpy(), levels)), dtype=torch.float64)
        block["oracle"] = quantile_metrics(q_or, y, levels, names)
        l_or = block["oracle"]["pinball_loss"]
        block["oracle_gap_closed"] = (l_clim - scored["pinball_loss"]) / (l_clim - l_or) if l_clim > l_or else None
    return block, preds


def per_instrument(data: MarketData, q: torch.Tensor, levels: Sequence[float], ewma_halflife: float
                   ) -> tuple[dict[str, dict[str, Any]], dict[str, torch.Tensor]]:
    """A pooled market and the forecasts q (N, H, Q) of its test rows (data.splits["test"] order) -> ({name:
    instrument_report block}, {baseline: (N, H, Q) each instrument's own baseline forecasts, in the same row
    order}: the pooled baselines of metrics.json are these, each instrument's fitted on its own training split)."""
    test = data.splits["test"].cpu()
    blocks: dict[str, dict[str, Any]] = {}
    parts: dict[str, list[torch.Tensor]] = {}
    for name, at in split_rows_of(data, test).items():
        if not len(at):
            continue
        blocks[name], preds = instrument_report(instrument_view(data, name), q[torch.from_numpy(at)], levels, ewma_halflife)
        for k, p in preds.items():
            parts.setdefault(k, []).append(p)
    # blocks follow row order, so the concatenation is in the test rows' order
    return blocks, {k: torch.cat(v) for k, v in parts.items()}


def instrument_scores(data: MarketData, rows: torch.Tensor, q: torch.Tensor, y: torch.Tensor, levels: Sequence[float]
                      ) -> dict[str, dict[str, float]]:
    """A pooled market's forecasts q (N, H, Q) and targets y (N, H) of `rows` (in that order) -> {name: {pinball_loss,
    crps, calibration_error}} of each instrument's rows (log-return units, as metrics.json's per-instrument test):
    history.json's per-instrument val, so a pooled run shows whose val loss moved."""
    out = {}
    for name, at in split_rows_of(data, rows).items():
        if len(at):
            at = torch.from_numpy(at).to(q.device)
            m = quantile_metrics(q[at], y[at], levels, data.horizon_names)
            out[name] = {k: m[k] for k in ("pinball_loss", "crps", "calibration_error")}
    return out


def kept_val(history_path: str | os.PathLike | None, best_epoch: int | None) -> dict[str, dict[str, float]]:
    """{name: the kept epoch's val scores} from a pooled run's history.json (instrument_scores of that epoch);
    {} where the history, the epoch or its per-instrument scores are missing (a run from before they were kept)."""
    if history_path is None or best_epoch is None or not Path(history_path).is_file():
        return {}
    try:
        epochs = json.loads(Path(history_path).read_text()).get("epochs", [])
    except (OSError, ValueError, AttributeError):
        return {}
    for e in epochs:
        if isinstance(e, dict) and e.get("epoch") == best_epoch:
            return dict((e.get("val_metrics") or {}).get("per_instrument") or {})
    return {}


def instrument_summary(scores: dict[str, dict[str, float]]) -> str:
    """{name: {pinball_loss, ...}} -> 'NQ 0.0005454, ES 0.0004145, ...' for one log line."""
    return ", ".join(f"{name} {s['pinball_loss']:.4g}" for name, s in scores.items())


def instrument_lines(metrics: dict[str, Any]) -> list[str]:
    """One log line per instrument: test pinball, skill vs its best baseline with the 95% interval, p of its
    calibration against exact calibration."""
    lines = []
    for name, b in (metrics.get("per_instrument") or {}).items():
        c = b["comparison"]
        lines.append(
            f"{name}: test pinball {b['test']['pinball_loss']:.6g} over {b['n_test_samples']} samples, vs {c['baseline']} "
            f"skill {100 * (b['skill_vs_best_baseline'] or 0.0):+.2f}% (difference {c['loss_difference']:.4g}, 95% CI "
            f"[{c['ci95'][0]:.4g}, {c['ci95'][1]:.4g}]), calibration error {b['test']['calibration_error']:.4f} "
            f"(p = {b['calibration_noise']['p_value']:.3f})")
    return lines

