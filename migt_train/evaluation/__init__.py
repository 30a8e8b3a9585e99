"""Evaluation: metrics, baselines, prediction, conformal recalibration, plots, test evaluation.

Names are resolved lazily so that importing the metrics for per-epoch validation does not pull in
matplotlib and pandas. `predict` is not re-exported: importing the submodule of the same name
would shadow it; use `from migt_train.evaluation.predict import predict`.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "quantile_metrics": "metrics",
    "pinball": "metrics",
    "crps_weights": "metrics",
    "level_key": "metrics",
    "Climatology": "baselines",
    "EWMAVolatility": "baselines",
    "fit_baselines": "baselines",
    "ConformalShift": "conformal",
    "plot_loss_curves": "plots",
    "plot_calibration": "plots",
    "evaluate_run": "evaluate",
    "predictions_frame": "evaluate",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
