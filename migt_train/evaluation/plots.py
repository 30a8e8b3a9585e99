"""Run-directory figures. Figures are built with the object API on an Agg canvas: no pyplot global
state, no display needed, safe beside other threads and backends."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Mapping, Sequence

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from migt_train.utils.io import atomic_write

_DPI = 120


def _save(fig: Figure, path: str | os.PathLike) -> Path:
    FigureCanvasAgg(fig)
    return atomic_write(path, lambda p: fig.savefig(p, format="png", dpi=_DPI, bbox_inches="tight"))


def plot_loss_curves(history: Mapping[str, Any] | str | os.PathLike, path: str | os.PathLike,
                     kept_epoch: int | None = None, kept_val_loss: float | None = None) -> Path | None:
    """Train/val loss per epoch from history.json ({"epochs": [...]}, epoch 0 = the initial weights), lr on
    a second y axis, and the kept epoch (best.pt; metrics.json best_epoch / best_val_loss) marked and named
    in the title. Without kept_epoch (an older run) the lowest val loss is marked.

    Returns None (and writes nothing) when the history holds no epochs.
    """
    if not isinstance(history, Mapping):
        history = json.loads(Path(history).read_text())
    epochs = [e for e in history.get("epochs", []) if "epoch" in e]
    if not epochs:
        return None
    x = [e["epoch"] for e in epochs]
    fig = Figure(figsize=(7.5, 4.5))
    ax = fig.add_subplot()
    for key, label, color in (("train_loss", "train loss", "tab:blue"), ("val_loss", "val loss", "tab:orange")):
        pts = [(xi, e[key]) for xi, e in zip(x, epochs) if e.get(key) is not None]
        if pts:
            ax.plot(*zip(*pts), marker="o", ms=3, lw=1.6, color=color, label=label)
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole numbers
    ax.set_ylabel("pinball loss (standardised targets)")
    ax.grid(alpha=0.3)
    lines, labels = ax.get_legend_handles_labels()
    lr = [(xi, e["lr"]) for xi, e in zip(x, epochs) if e.get("lr") is not None]
    if lr:
        ax2 = ax.twinx()
        ax2.plot(*zip(*lr), ls="--", lw=1.2, color="tab:gray", label="learning rate")
        ax2.set_ylabel("learning rate")
        ax2.ticklabel_format(axis="y", style="sci", scilimits=(-2, 3))
        l2, lab2 = ax2.get_legend_handles_labels()
        lines, labels = lines + l2, labels + lab2
    ax.legend(lines, labels, loc="best", fontsize=9, framealpha=0.85)
    kept = kept_epoch_title(epochs, kept_epoch, kept_val_loss)
    if kept is not None:
        epoch, val, title = kept
        ax.axvline(epoch, color="tab:orange", alpha=0.25, lw=1)
        if val is not None:
            ax.plot([epoch], [val], marker="*", ms=12, color="tab:red", ls="none", zorder=5)
        ax.set_title(title, fontsize=11)
    return _save(fig, path)


def kept_epoch_title(epochs: Sequence[Mapping[str, Any]], kept_epoch: int | None,
                     kept_val_loss: float | None) -> tuple[int, float | None, str] | None:
    """(epoch, val loss, title) of the epoch the loss-curve plot marks: the kept one when given, else the
    lowest val loss of the history; None when there is neither."""
    if kept_epoch is None:
        best = min((e for e in epochs if e.get("val_loss") is not None), key=lambda e: e["val_loss"], default=None)
        if best is None:
            return None
        kept_epoch, kept_val_loss = best["epoch"], best["val_loss"]
    what = "the initial weights (epoch 0)" if kept_epoch == 0 else f"epoch {kept_epoch}"
    val = "" if kept_val_loss is None else f", val loss {kept_val_loss:.6g}"
    return kept_epoch, kept_val_loss, f"Loss curves (kept in best.pt: {what}{val})"


def plot_calibration(
    metrics: Mapping[str, Any], levels: Sequence[float], horizon_names: Sequence[str], path: str | os.PathLike,
    title: str = "Test calibration",
    reference: tuple[str, Mapping[str, Any]] | None = None,
    noise: Mapping[str, Any] | None = None,
) -> Path:
    """Reliability diagram from a quantile_metrics dict: left, nominal level vs observed coverage
    per horizon; right, central-interval nominal coverage vs PICP. Perfect calibration = diagonal.
    reference: (name, quantile_metrics dict) of a baseline, drawn dashed (all horizons pooled).
    noise: metrics.json calibration_noise of the same rows: its coverage_band95 (the pooled coverage an exactly
    calibrated forecast stays within in 95% of draws) is shaded around the diagonal, its p_value in the title."""
    from migt_train.evaluation.metrics import level_key

    fig = Figure(figsize=(11, 4.8))
    ax_q, ax_i = fig.subplots(1, 2)
    for ax in (ax_q, ax_i):
        ax.plot([0, 1], [0, 1], color="black", lw=1, ls=":", label="ideal")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_aspect("equal")
        ax.grid(alpha=0.3)
    taus = [float(t) for t in levels]
    if noise is not None:
        band = noise["coverage_band95"]
        ax_q.fill_between(taus, [band[level_key(t)][0] for t in taus], [band[level_key(t)][1] for t in taus],
                          color="tab:gray", alpha=0.2, lw=0, label="exactly calibrated, 95% of draws (all)")
    for name in horizon_names:
        m = metrics["per_horizon"][name]
        ax_q.plot(taus, [m["coverage"][level_key(t)] for t in taus], marker="o", ms=4, lw=1.4, label=name)
        iv = m["intervals"]
        if iv:
            ax_i.plot([i["nominal"] for i in iv], [i["picp"] for i in iv], marker="o", ms=4, lw=1.4, label=name)
    ax_q.plot(taus, [metrics["coverage"][level_key(t)] for t in taus], color="black", lw=2, alpha=0.6, label="all")
    all_iv = sorted(metrics["intervals"], key=lambda i: i["nominal"])
    if all_iv:
        ax_i.plot([i["nominal"] for i in all_iv], [i["picp"] for i in all_iv], color="black", lw=2, alpha=0.6, label="all")
    if reference is not None:
        ref_name, ref = reference
        ax_q.plot(taus, [ref["coverage"][level_key(t)] for t in taus], color="tab:red", ls="--", lw=2, alpha=0.8,
                  label=f"{ref_name} (all, cal. err. {ref['calibration_error']:.3f})")
        ref_iv = sorted(ref["intervals"], key=lambda i: i["nominal"])
        if ref_iv:
            ax_i.plot([i["nominal"] for i in ref_iv], [i["picp"] for i in ref_iv], color="tab:red", ls="--", lw=2,
                      alpha=0.8, label=f"{ref_name} (all)")
    ax_q.set_xlabel("quantile level τ  (levels: " + ", ".join(level_key(t) for t in taus) + ")", fontsize=9)
    ax_q.set_ylabel("observed coverage  P(y ≤ q_τ)")
    p = "" if noise is None else f", p = {noise['p_value']:.2f} against exact calibration"
    ax_q.set_title(f"Quantiles (calibration error {metrics['calibration_error']:.3f}{p})", fontsize=10)
    ax_q.legend(loc="best", fontsize=8, framealpha=0.85)
    pairs = ", ".join(f"{i['lower']:g}–{i['upper']:g}" for i in sorted(metrics["intervals"], key=lambda i: i["nominal"]))
    ax_i.set_xlabel(f"nominal interval coverage  (intervals: {pairs})", fontsize=9)
    ax_i.set_ylabel("observed coverage (PICP)")
    ax_i.set_title("Central intervals", fontsize=10)
    ax_i.legend(loc="best", fontsize=8, framealpha=0.85)
    fig.suptitle(title, fontsize=11)
    return _save(fig, path)


def plot_instrument_calibration(per_instrument: Mapping[str, Mapping[str, Any]], levels: Sequence[float],
                                path: str | os.PathLike, title: str = "Test calibration per instrument") -> Path:
    """A pooled run's reliability diagram, one panel per instrument (metrics.json per_instrument): nominal level
    vs observed coverage per horizon and over all horizons, the band an exactly calibrated forecast stays within
    on the instrument's own test rows, its best baseline dashed; calibration error and p-value in the title."""
    from migt_train.evaluation.metrics import level_key

    names = list(per_instrument)
    cols = min(4, len(names))
    rows = -(-len(names) // cols)
    fig = Figure(figsize=(3.6 * cols, 3.7 * rows))
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    taus = [float(t) for t in levels]
    for ax, name in zip(axes, names):
        block = per_instrument[name]
        test, noise = block["test"], block.get("calibration_noise")
        ax.plot([0, 1], [0, 1], color="black", lw=1, ls=":")
        if noise is not None:
            band = noise["coverage_band95"]
            ax.fill_between(taus, [band[level_key(t)][0] for t in taus], [band[level_key(t)][1] for t in taus],
                            color="tab:gray", alpha=0.2, lw=0)
        for h, m in test["per_horizon"].items():
            ax.plot(taus, [m["coverage"][level_key(t)] for t in taus], marker="o", ms=3, lw=1.1, label=h)
        ax.plot(taus, [test["coverage"][level_key(t)] for t in taus], color="black", lw=2, alpha=0.6, label="all")
        best = block.get("best_baseline")
        if best is not None:
            ref = block["baselines"][best]
            ax.plot(taus, [ref["coverage"][level_key(t)] for t in taus], color="tab:red", ls="--", lw=1.5,
                    alpha=0.8, label=best)
        p = "" if noise is None else f", p = {noise['p_value']:.2f}"
        ax.set_title(f"{name}: cal. err. {test['calibration_error']:.3f}{p}", fontsize=9)
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_aspect("equal")
        ax.grid(alpha=0.3)
        ax.set_xlabel("quantile level τ", fontsize=8)
    for ax in axes[len(names):]:
        ax.set_visible(False)
    axes[0].set_ylabel("observed coverage  P(y ≤ q_τ)", fontsize=8)
    axes[0].legend(loc="upper left", fontsize=7, framealpha=0.85)
    fig.suptitle(title, fontsize=11)
    return _save(fig, path)
