"""Test-split evaluation of a trained model: metrics.json, predictions.parquet and plots in one dir."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
import torch
from torch import nn

from migt_train.data.market import MarketData
from migt_train.errors import MigtError
from migt_train.evaluation.baselines import fit_baselines
from migt_train.evaluation.calibration_noise import calibration_noise, describe
from migt_train.evaluation.comparison import baseline_metrics, compare_with_best_baseline, log_comparison
from migt_train.evaluation.conformal import ConformalShift
from migt_train.evaluation.metrics import level_key, quantile_metrics
from migt_train.evaluation.per_instrument import instrument_lines, kept_val, per_instrument
from migt_train.evaluation.plots import plot_calibration, plot_instrument_calibration, plot_loss_curves
from migt_train.evaluation.settings import DEFAULT_EWMA_HALFLIFE, FIT_SUMMARY_KEYS
from migt_train.training.inference import predict
from migt_train.utils.io import atomic_write, write_json
from migt_train.training.runtime import Precision

log = logging.getLogger(__name__)


def quantile_column(tau: float) -> str:
    return f"q_{level_key(tau)}"


def predictions_frame(
    data: MarketData, rows: torch.Tensor, q: torch.Tensor, levels: Sequence[float], extra: Mapping[str, torch.Tensor] | None = None
) -> pd.DataFrame:
    """Long table, one row per (sample, horizon), sample-major: the layout of predictions.parquet.

    `extra` maps a column prefix to another (N, H, Q) forecast (e.g. "conformal_" -> recalibrated).
    """
    rows_np = rows.cpu().numpy()
    n, h = len(rows_np), len(data.horizons)
    ts = pd.DatetimeIndex(pd.to_datetime(data.timestamps, utc=True))[rows_np]
    frame: dict[str, Any] = {
        "timestamp": ts.repeat(h),
        "row": np.repeat(rows_np, h),
        "horizon": np.tile(np.asarray(data.horizon_names, dtype=object), n),
        "horizon_bars": np.tile(np.asarray(data.horizons, dtype=np.int64), n),
        "target": data.targets[rows].cpu().numpy().reshape(-1),
    }
    if data.instruments:  # a pooled run: whose forecast each row is
        names = np.asarray(data.instruments, dtype=object)[data.instrument[rows].cpu().numpy()]
        frame = {"instrument": np.repeat(names, h), **frame}
    for prefix, qq in {"": q, **(extra or {})}.items():
        flat = qq.cpu().numpy().reshape(n * h, -1)
        for j, tau in enumerate(levels):
            frame[prefix + quantile_column(tau)] = flat[:, j]
    return pd.DataFrame(frame)


def _loss(m: Mapping[str, Any] | None) -> float | None:
    return None if m is None else m["pinball_loss"]


def oracle_gap_closed(loss: float, l_clim: float, l_oracle: float | None) -> float | None:
    """Share of the climatology-to-oracle pinball gap a forecast with `loss` closes (1 = the oracle's loss).
    Undefined (None) without an oracle, or when the oracle is no better than climatology: no gap to close."""
    return (l_clim - loss) / (l_clim - l_oracle) if l_oracle is not None and l_clim > l_oracle else None


def evaluate_run(
    run_dir: str | os.PathLike,
    model: nn.Module,
    data: MarketData,
    levels: Sequence[float],
    *,
    fit_summary: Mapping[str, Any] | None,
    history_path: str | os.PathLike | None = None,
    batch_size: int = 512,
    device: torch.device | str = "cpu",
    conformal: bool = False,
    ewma_halflife: float = DEFAULT_EWMA_HALFLIFE,
    precision: Precision | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """Evaluate `model` (already loaded, already on `device`) on the test split and write into run_dir:
    metrics.json, predictions.parquet, plots/loss_curves.png (if history_path has epochs),
    plots/calibration.png (+ plots/calibration_conformal.png). Returns the metrics dict.
    `precision`: the autocast validation used (the same numerics for the test forecasts).
    """
    run_dir = Path(run_dir)
    levels = [float(t) for t in levels]
    test = data.splits["test"].cpu()
    if len(test) == 0:
        raise MigtError("data.splits.test: the test split is empty (0 rows); nothing to evaluate")
    y = data.targets[test].cpu()
    if not torch.isfinite(y).all():
        raise MigtError(f"data.targets: test targets are not finite ({int((~torch.isfinite(y)).any(1).sum())} rows)")

    q = predict(model, data, test, batch_size, device, precision, "test evaluation" if progress else None)
    if q.shape[1:] != (len(data.horizons), len(levels)):
        raise MigtError(
            f"model: forecasts have shape {tuple(q.shape[1:])} per sample but the config asks for "
            f"{len(data.horizons)} horizons x {len(levels)} levels"
        )
    extra: dict[str, torch.Tensor] = {}
    names = list(data.horizon_names)
    metrics: dict[str, Any] = {k: None for k in FIT_SUMMARY_KEYS}
    metrics.update(fit_summary or {})
    if metrics.get("n_parameters") is None:
        metrics["n_parameters"] = sum(p.numel() for p in model.parameters())
    metrics.update(
        levels=levels,
        horizons=names,
        horizon_bars=list(data.horizons),
        data_source=data.source,
        n_test_samples=len(test),
        test=quantile_metrics(q, y, levels, names),
    )
    metrics["calibration_noise"] = calibration_noise(metrics["test"]["calibration_error"], test.numpy(), data.horizons, levels)

    per_inst: dict[str, Any] | None = None
    if data.instruments:  # pooled: each instrument's baselines, fitted on its own training split
        per_inst, preds = per_instrument(data, q, levels, ewma_halflife)
        reports: dict[str, Any] = {}
    else:
        baselines = fit_baselines(data, levels, ewma_halflife)
        preds = {k: b.predict(test) for k, b in baselines.items()}
        reports = {k: b.report() for k, b in baselines.items() if hasattr(b, "report")}  # e.g. garch_t_tod's fit
    metrics["baselines"] = baseline_metrics(preds, y, levels, names, reports)
    # data.split.by=all (another file scored whole) has no training split of its own
    in_sample = torch.equal(data.splits["train"].cpu(), test)
    metrics["baseline_settings"] = {"ewma_halflife_bars": ewma_halflife,
                                    "fitted_on": "test (in-sample: data.split.by=all)" if in_sample else "train"}
    metrics.update(compare_with_best_baseline(q, y, preds, levels, names, block=max(data.horizons)))
    if per_inst is not None:
        metrics["instruments"] = list(data.instruments)
        metrics["per_instrument"] = per_inst
        for name, scores in kept_val(history_path, metrics.get("best_epoch")).items():
            if name in per_inst:  # the kept epoch's val on the instrument's own rows, beside its test
                per_inst[name]["val"] = scores
    metrics["oracle"] = None
    if data.oracle is not None:
        q_or = torch.as_tensor(np.asarray(data.oracle.quantiles(test.numpy(), levels)), dtype=torch.float64)
        metrics["oracle"] = quantile_metrics(q_or, y, levels, names)

    loss, l_clim, l_or = _loss(metrics["test"]), _loss(metrics["baselines"]["climatology"]), _loss(metrics["oracle"])
    metrics["skill_vs_climatology"] = 1.0 - loss / l_clim if l_clim > 0 else None
    metrics["oracle_gap_closed"] = oracle_gap_closed(loss, l_clim, l_or)
    if l_or is not None:  # the same figure for each baseline, e.g. how much room garch_t_tod leaves
        for block in metrics["baselines"].values():
            block["oracle_gap_closed"] = oracle_gap_closed(block["pinball_loss"], l_clim, l_or)

    if conformal:
        val = data.splits["val"].cpu()
        val_q = predict(model, data, val, batch_size, device, precision, "conformal fit on val" if progress else None)
        cal = ConformalShift.fit(val_q, data.targets[val].cpu(), levels)
        extra["conformal_"] = cal.apply(q)
        metrics["test_conformal"] = quantile_metrics(extra["conformal_"], y, levels, names)
        metrics["conformal"] = {
            "fitted_on": "val",
            "n_calibration": cal.n_calibration,
            "shifts": {n: {level_key(t): float(s) for t, s in zip(levels, row)} for n, row in zip(names, cal.shifts)},
        }

    frame = predictions_frame(data, test, q, levels, extra)
    atomic_write(run_dir / "predictions.parquet", lambda p: frame.to_parquet(p, index=False, engine="pyarrow"))
    plots = run_dir / "plots"
    reference = (metrics["best_baseline"], metrics["baselines"][metrics["best_baseline"]])
    plot_calibration(metrics["test"], levels, names, plots / "calibration.png", reference=reference,
                     noise=metrics["calibration_noise"])
    if per_inst is not None:
        plot_instrument_calibration(per_inst, levels, plots / "calibration_instruments.png")
    if conformal:
        plot_calibration(metrics["test_conformal"], levels, names, plots / "calibration_conformal.png",
                         title="Test calibration after conformal recalibration (fitted on val)", reference=reference)
    if history_path is not None and Path(history_path).is_file():
        kept = (fit_summary or {}).get("best_epoch"), (fit_summary or {}).get("best_val_loss")
        if plot_loss_curves(history_path, plots / "loss_curves.png", *kept) is None:
            log.warning("%s holds no epochs; loss curves not plotted", history_path)
    else:
        log.warning("no history at %s; loss curves not plotted", history_path)
    write_json(run_dir / "metrics.json", metrics)
    log_comparison(metrics)
    log.info(describe(metrics["test"]["calibration_error"], metrics["calibration_noise"]))
    for line in instrument_lines(metrics):
        log.info(line)
    return metrics
