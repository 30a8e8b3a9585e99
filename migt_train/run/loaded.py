"""A finished run as a forecaster: `run = migt_train.load_run(path)`; `run.predict(frame)` -> DataFrame.

The run's best checkpoint with its config (feature and target scaling travel in the model's state), on the
light data path of `data.latest`: bars -> features -> the windows ending at the latest bars.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
import torch
from torch import nn

from migt_train.errors import MigtError

@dataclass
class Run:
    path: Path
    cfg: Any  # DictConfig: the run's config.yaml with the overrides applied, resolved
    model: nn.Module  # best.pt's weights (feature and target scaling included), eval mode, on `device`
    precision: Any  # runtime.Precision: the autocast the run validated under
    levels: list[float]
    device: torch.device
    batch_size: int = 128
    anchor_fit: Any = None  # volatility.anchor.AnchorFit ({name: fit}, pooled): the run's stored anchor (data.vol_anchor)
    instruments: list[str] | None = None  # a pooled run's instruments (its model's ids), None for one

    def market(self, frame: pd.DataFrame | Mapping[str, pd.DataFrame] | None = None, last: int | None = 1,
               partial: bool = False):
        """The MarketData a forecast reads (see data.latest.latest_market)."""
        from migt_train.data.latest import latest_market
        from migt_train.evaluation.from_run import cross_body

        check_last(last)
        return latest_market(self.cfg.data, table=frame, last=last, anchor_fit=self.anchor_fit, partial=partial,
                             instruments=self.instruments, cross_body=cross_body(self.cfg))

    def predict(self, frame: pd.DataFrame | Mapping[str, pd.DataFrame] | None = None, last: int | None = 1,
                partial: bool = False) -> pd.DataFrame:
        """Forecasts from the last `last` complete bars (every bar with a full lookback when None) of `frame` (a
        table like the run's data file; for a pooled run {name: table} of some or all of its instruments), or of
        the run's data when frame is None. A last bar still forming (the file's rows cover part of it, or it ends
        in the future) is left out unless `partial`. A pooled run forecasts each instrument's latest bars; its
        rows carry `instrument`.

        Returns the predictions.parquet layout — timestamp, row, horizon, horizon_bars, target (NaN where the
        future is unknown), q_<level> (log returns) — plus close, price_q_<level> = close * exp(q) and
        partial (True for a forecast from a bar still forming).
        Same batches, forward step and autocast as the run's validation (inference.predict).
        """
        from migt_train.data.latest import PARTIAL, SPLIT
        from migt_train.evaluation.report import predictions_frame, quantile_column
        from migt_train.training.inference import predict

        data = self.market(frame, last, partial)
        rows = data.splits[SPLIT]
        q = predict(self.model, data, rows, self.batch_size, self.device, self.precision)
        assert data.close is not None
        out = predictions_frame(data, rows, q, self.levels)
        out["close"] = np.repeat(data.close[rows.numpy()], len(data.horizons))
        for tau in self.levels:
            col = quantile_column(tau)
            out[f"price_{col}"] = out["close"] * np.exp(out[col].to_numpy(np.float64))
        out["partial"] = np.isin(out["row"].to_numpy(), data.splits[PARTIAL].numpy())
        return out


def check_last(last: Any) -> None:
    """`last`: a whole number >= 1, or None for every bar (as the CLI's --last N / --all)."""
    if last is None:
        return
    if isinstance(last, bool) or not isinstance(last, (int, np.integer)) or last < 1:
        raise MigtError(f"last: the number of latest bars to forecast from must be a whole number >= 1, or None for "
                        f"every bar with a full lookback (got {last!r})")


def load_run(path: str | Path, overrides: Sequence[str] = (), device: str | torch.device = "cpu") -> Run:
    """A run directory (config.yaml + checkpoints/best.pt) -> Run. `overrides`: key=value strings applied to
    the run's config, as for the evaluate CLI (e.g. data.path=other.csv)."""
    from migt_train.data.features import FEATURE_NAMES
    from migt_train.evaluation.from_run import load_model, load_run_config, run_anchor_fit, run_instruments, run_precision
    from migt_train.training.runtime import resolve_device

    run_dir = Path(path)
    cfg, ckpt, ckpt_path, levels = load_run_config(run_dir, overrides)
    anchor_fit = run_anchor_fit(run_dir, cfg)
    dev = resolve_device(device, key="device")
    # the cross inputs of a pooled run add variables: its config records how many
    n_features = int((cfg.get("model") or {}).get("n_variables") or len(FEATURE_NAMES))
    model = load_model(cfg, ckpt, ckpt_path, n_features).to(dev).eval()
    ev = cfg.get("evaluation") or {}
    return Run(run_dir, cfg, model, run_precision(cfg, dev), levels, dev, int(ev.get("batch_size") or 128), anchor_fit,
               run_instruments(ckpt))
