"""Causal recalibrations of the volatility anchor that were measured and not adopted (README "Forecast quality").

    python scripts/calibration_alternatives.py [--test] [data overrides...]
    e.g. python scripts/calibration_alternatives.py data=ohlcv data.path=qqq_1m.csv data.session_start=09:30

Composes the quickstart config with the overrides, builds the anchored market and prints val (and with --test
also test) pinball x1e-4 and calibration error of:
  anchor            sigma_h x the training quantiles of y / sigma_h less their mean (the untrained model)
  drift kept        sigma_h x the training quantiles of y / sigma_h with their mean (the training drift)
  drift hl=D d      + sigma_h x an EWMA (half-life D trading days) of the realised y / sigma_h known at the
                    origin (outcomes of rows <= t - h): the recent drift, in anchor units
  aci g=G           adaptive conformal inference (Gibbs & Candes 2021): each (horizon, level) quantile of
                    y / sigma_h moves by G x (tau - miss) once an outcome is known, from the training start
  long-run hl=D d   the multi-step variance reverts to an EWMA (half-life D days) of the filtered variance
                    instead of the training level omega / (1 - persistence)
A study tool with a per-bar Python loop (aci); the data path of runs has none.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch
from hydra import compose, initialize_config_dir
from scipy.signal import lfilter

import migt_train.data.build as build
from migt_train.volatility import anchor as va
from migt_train.evaluation.metrics import quantile_metrics

CONF = Path(__file__).resolve().parents[1] / "conf"


def _ewma(x: np.ndarray, halflife: float, first: float) -> np.ndarray:
    a = 1 - 0.5 ** (1 / halflife)
    return lfilter([a], [1, -(1 - a)], x, zi=[(1 - a) * first])[0]


def drift(y: np.ndarray, s: np.ndarray, horizons: list[int], halflife: float) -> np.ndarray:
    """(N, H) EWMA of y / sigma over the outcomes known at each row (row t sees rows <= t - h)."""
    out = np.zeros_like(y)
    for j, h in enumerate(horizons):
        e = _ewma(np.nan_to_num(y[:, j] / s[:, j]), halflife, 0.0)
        out[h:, j] = e[:-h]
    return out


def aci(y: np.ndarray, q0: np.ndarray, s: np.ndarray, levels: list[float], horizons: list[int], gamma: float) -> np.ndarray:
    n, nh, _ = q0.shape
    tau, cur, adj = np.asarray(levels), np.zeros((nh, len(levels))), np.zeros(q0.shape)
    for t in range(n):
        for j, h in enumerate(horizons):
            r = t - h
            if r >= 0 and not np.isnan(y[r, j]):
                cur[j] += gamma * (tau - (y[r, j] <= q0[r, j] + s[r, j] * adj[r, j]))
        adj[t] = cur
    return q0 + s[..., None] * adj


def long_run_anchor(halflife_days: float):
    """apply_anchor with the multi-step variance reverting to a moving level."""
    def apply(fit, returns, bar_in_day, horizons, events=None):
        g, bid = fit.garch, np.asarray(bar_in_day, dtype=np.int64)
        n = len(bid)
        mult = np.ones(n) if fit.releases is None else va.apply_release_table(fit.releases, va.release_lags(events))
        s2 = g.filter_variance(np.asarray(returns, dtype=np.float64) / np.sqrt(mult), bid)
        phi = g.persistence
        level = _ewma(s2, halflife_days * len(np.unique(bid)), g.init_variance)  # starts at the training variance
        kmax = int(max(horizons))
        k, h_idx = np.arange(kmax), np.asarray(horizons) - 1
        out = np.empty((n, len(horizons)), dtype=np.float32)
        room = n - kmax
        for lo in range(0, room, 8192):
            rows = np.arange(lo, min(lo + 8192, room))
            ahead = rows[:, None] + 1 + k
            expected = level[rows, None] * (1 - phi**k) + phi**k * s2[rows, None]
            out[rows] = np.sqrt(np.cumsum(g.profile[bid[ahead]] ** 2 * mult[ahead] * expected, axis=1)[:, h_idx])
        out[room:] = out[room - 1]
        return out
    return apply


def main(argv: list[str]) -> None:
    test = "--test" in argv
    overrides = [a for a in argv if a != "--test"]
    splits = ["val", "test"] if test else ["val"]
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(config_name="config", overrides=overrides)
    data = build.load_market(cfg.data)
    levels, horizons = [float(t) for t in cfg.quantiles.levels], list(data.horizons)
    bars_a_day = len(np.unique(data.bar_in_day[data.splits["train"]].numpy()))
    y, s = data.targets.double().numpy(), data.vol_anchor.double().numpy()
    z = data.anchored_quantiles(levels).double().numpy()
    q0 = s[..., None] * z[None]

    def report(name: str, q: np.ndarray, d=data) -> None:
        cells = []
        for split in splits:
            rows = d.splits[split].numpy()
            m = quantile_metrics(torch.from_numpy(q[rows]), d.targets[rows].double(), levels, d.horizon_names)
            cells.append(f"{split} {m['pinball_loss'] * 1e4:.4f} cal {m['calibration_error']:.4f}")
        print(f"{name:40s} " + " | ".join(cells), flush=True)

    report("anchor", q0)
    train = data.splits["train"].numpy()
    report("training drift kept", s[..., None] * np.nanquantile(y[train] / s[train], levels, axis=0).T[None])
    for days in (3, 10):
        report(f"drift hl={days} d", q0 + (drift(y, s, horizons, days * bars_a_day) * s)[..., None])
    for gamma in (0.001, 0.002):
        report(f"aci g={gamma}", aci(y, q0, s, levels, horizons, gamma))
    for days in (1, 5):
        build.apply_anchor = long_run_anchor(days)
        d = build.load_market(cfg.data)
        build.apply_anchor = va.apply_anchor
        q = d.vol_anchor.double().numpy()[..., None] * d.anchored_quantiles(levels).double().numpy()[None]
        report(f"long-run hl={days} d", q, d)


if __name__ == "__main__":
    main(sys.argv[1:])
