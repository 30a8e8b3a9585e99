"""evaluation.price_tick: quantile forecasts moved onto the price grid the instrument trades on.

A futures price moves in whole ticks (FESX 1 index point, ES 0.25), so an h-bar return is one of a few
values log((close + k tick) / close), and at short horizons many outcomes are exactly 0 (18% of FESX's
15-minute returns at 5-minute bars). Every quantile of such an outcome lies on the grid, and no forecast
between two grid points can be one: a median 0.1 bp below 0 says P(y <= q) = 0.5 where P(y < 0) was 0.38.
Snapping each quantile to the nearest grid point gives the quantile of the forecast distribution rounded to
whole ticks, which lowers its expected pinball loss; its coverage then brackets the level,
P(y < q) <= tau <= P(y <= q). Coverage as metrics.json counts it (y <= q) includes the whole atom at q, so on
such data no forecast's coverage can match every level, and the calibration error moves with the side an
atom falls on. A forecast moves by at most half a tick: this matters only where a tick is large against
the horizon's spread (FESX at 5-minute bars; not ES, NQ or QQQ).

The tick is found on the training closes (the smallest price change, when at least ON_GRID_SHARE of the
changes are whole multiples of it) or given in config. The snapping is applied only when, on val, it lowers
the pinball loss and does not raise the calibration error. All of it is stored as price_grid.json; evaluate
and predict read it, never re-decide it.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from migt_train.errors import MigtError
from migt_train.evaluation.settings import parse_price_tick
from migt_train.utils.io import read_val_decision, write_json

log = logging.getLogger(__name__)

GRID_FILE = "price_grid.json"
# share of the training price changes that must be whole multiples of the tick for a grid to be used
ON_GRID_SHARE = 0.999
# a price change is a multiple of the tick when within this fraction of the price level of one (float noise of
# a difference of two float64 prices is ~1e-16 of the price); ticks finer than MIN_TICK of the price (real
# ones are 1e-6 and up) are read as continuous prices
_FLOAT_NOISE = 1e-9
MIN_TICK = 1e-7
# a snapped quantile sits this fraction of a tick above its grid point: outcomes on the point count as
# covered (y <= q) whatever the float rounding of the float32 targets
_ABOVE_POINT = 1e-3


def _changes(close: np.ndarray) -> tuple[np.ndarray, float]:
    """(nonzero absolute price changes, median price level) of a close series."""
    close = np.asarray(close, dtype=np.float64)
    d = np.abs(np.diff(close))
    return d[d > 0], float(np.median(np.abs(close))) if len(close) else 0.0


def _share(d: np.ndarray, level: float, tick: float) -> float:
    return float(np.mean(np.abs(d - np.round(d / tick) * tick) <= _FLOAT_NOISE * level)) if len(d) else 1.0


def share_on_grid(close: np.ndarray, tick: float) -> float:
    """Share of the nonzero price changes in `close` that are whole multiples of `tick` (1.0 if none)."""
    return _share(*_changes(close), tick)


def detect_tick(close: np.ndarray) -> tuple[float | None, float]:
    """(tick, share of changes on its grid): the smallest price change, when ON_GRID_SHARE of the changes
    are multiples of it; (None, share) for prices off any grid (e.g. the synthetic market)."""
    d, level = _changes(close)
    if len(d) == 0:
        return None, 0.0
    tick = float(f"{d.min():.8g}")  # 0.004999999999995 (a difference of two float prices) -> 0.005
    if tick < MIN_TICK * level:
        return None, 0.0
    share = _share(d, level, tick)
    return (tick if share >= ON_GRID_SHARE else None), share


@dataclass
class PriceGrid:
    """tick: the price increment; None when the setting is on but no grid was found (nothing is snapped)."""

    tick: float | None
    source: str  # how the tick was set: "found on the training closes" or "evaluation.price_tick"
    share_on_grid: float  # of the training price changes
    applied: bool = False  # decided on val (decide_on_val)
    val: dict[str, float] | None = None  # val pinball and calibration error off and on the grid

    def decide_on_val(self, q_val: torch.Tensor, data: Any, levels: Sequence[float]) -> None:
        """Apply the grid when, on the val forecasts q_val (N_val, H, Q), it lowers the pinball loss and does not
        raise the calibration error."""
        if self.tick is None:
            return
        from migt_train.evaluation.metrics import quantile_metrics

        val = data.splits["val"].cpu()
        y, names = data.targets[val], list(data.horizon_names)
        off = quantile_metrics(q_val, y, levels, names)
        on = quantile_metrics(self.snap(q_val, data.close[val.numpy()], force=True), y, levels, names)
        self.val = {"pinball_off_grid": off["pinball_loss"], "pinball_on_grid": on["pinball_loss"],
                    "calibration_off_grid": off["calibration_error"], "calibration_on_grid": on["calibration_error"],
                    "n_val": len(val)}
        self.applied = on["pinball_loss"] < off["pinball_loss"] and on["calibration_error"] <= off["calibration_error"]

    @classmethod
    def for_market(cls, setting: Any, data: Any) -> "PriceGrid":
        """evaluation.price_tick ("auto" or a tick size) on the training closes of `data` (MarketData)."""
        if data.close is None:
            raise MigtError("config key 'evaluation.price_tick': the data source carries no close prices to put on a grid")
        close = data.close[data.splits["train"].cpu().numpy()]
        tick = parse_price_tick(setting)
        if tick == "auto":
            found, share = detect_tick(close)
            return cls(found, "found on the training closes", share)
        share = share_on_grid(close, tick)
        if share < ON_GRID_SHARE:
            raise MigtError(f"config key 'evaluation.price_tick': only {share:.1%} of the training price changes are whole "
                            f"multiples of {tick:g} (need {ON_GRID_SHARE:.1%}); give the instrument's tick, or auto")
        return cls(tick, "evaluation.price_tick", share)

    def snap(self, q: torch.Tensor, close: np.ndarray, force: bool = False) -> torch.Tensor:
        """q (N, H, Q) log returns from closes (N,) -> each quantile at its nearest grid point (when the grid was
        applied on val, or `force`)."""
        if self.tick is None or not (self.applied or force):
            return q
        p = torch.as_tensor(np.asarray(close, dtype=np.float64), device=q.device).view(-1, 1, 1)
        k = torch.round(torch.expm1(q.double()) * p / self.tick)
        return torch.log1p((k + _ABOVE_POINT) * self.tick / p).to(q.dtype)

    def describe(self) -> str:
        if self.tick is None:
            why = f" ({self.share_on_grid:.1%} of the changes are multiples of the smallest)" if self.share_on_grid else ""
            return f"price grid: none found on the training closes{why}; forecasts left continuous"
        head = f"price grid: tick {self.tick:g} ({self.source}; {self.share_on_grid:.2%} of the training price changes on it)"
        if self.val is None:
            return head + ("; quantiles snapped to it" if self.applied else "; not decided on val, not applied")
        v = self.val
        return (f"{head}; val pinball {v['pinball_off_grid']:.6g} -> {v['pinball_on_grid']:.6g}, calibration error "
                f"{v['calibration_off_grid']:.4f} -> {v['calibration_on_grid']:.4f} on it: "
                + ("quantiles snapped to it" if self.applied else "not applied (it must lower the pinball loss and not "
                                                                   "raise the calibration error)"))

    def to_json(self) -> dict[str, Any]:
        return {"version": 1, "tick": self.tick, "source": self.source, "share_on_grid": self.share_on_grid,
                "applied": self.applied, "val": self.val}

    @classmethod
    def from_json(cls, d: Any, source: str) -> "PriceGrid":
        try:
            if d["version"] != 1:
                raise MigtError(f"{source}: version {d['version']} is not supported (this code reads version 1)")
            tick = None if d["tick"] is None else float(d["tick"])
            grid = cls(tick, str(d["source"]), float(d["share_on_grid"]), bool(d["applied"]), d["val"])
        except (KeyError, TypeError, ValueError) as e:
            raise MigtError(f"{source}: not a price grid ({type(e).__name__}: {e})") from None
        if tick is not None and not (math.isfinite(tick) and tick > 0):
            raise MigtError(f"{source}: tick must be positive, not {tick}")
        return grid


def write_grid(run_dir: Path, grid: PriceGrid) -> None:
    write_json(Path(run_dir) / GRID_FILE, grid.to_json())


def read_grid(run_dir: Path) -> PriceGrid:
    """A run's stored price grid; one MigtError when a run trained with evaluation.price_tick lacks it."""
    return read_val_decision(run_dir, GRID_FILE, "evaluation.price_tick set", PriceGrid.from_json)
