"""data.cross_asset: every instrument's forecast also sees the other instruments' bars at its own timestamps.

Instruments trade at different minutes (YM and RTY skip minutes without trades): an instrument without a bar at a
row's start contributes zeros, which is also what a minute without trades is (no price change, no range). A bar at
the same start covers the same interval and closes with the row's own bar, so what is read there is known at the
forecast origin (causal). Two routes, one per model kind (data.assemble.with_cross_inputs):

- with the volatility anchor (the heads forecast): each instrument's last few bar moves in units of the std its
  own anchor expected (cross_moves), one slot per instrument of the run, its own included; one market's shock
  often reaches another's price a few bars later (lead-lag), a shift of the forecast's location that the heads
  learn per instrument (model.n_cross).
- without it (the body learns): one block of extra variables per instrument (cross_block): its one-bar log return
  and Garman-Klass range and whether it has a bar there; they go through the temporal stage like the
  instrument's own and meet them in the variable-attention stage.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

# the features of another instrument a window sees, then its presence flag
CROSS_FEATURES = ("log_return", "garman_klass")
PRESENT = "present"
# bar moves of every instrument the heads see: the bar and the ones before it (lead-lag lives in the last few bars)
CROSS_MOVE_LAGS = 3


def cross_names(instruments: Sequence[str]) -> list[str]:
    """The extra variables' names, slot by slot: NQ:log_return, NQ:garman_klass, NQ:present, ES:..."""
    return [f"{name}:{f}" for name in instruments for f in (*CROSS_FEATURES, PRESENT)]


def cross_block(timestamps: Sequence[np.ndarray], features: Sequence[np.ndarray],
                feature_names: Sequence[str]) -> list[np.ndarray]:
    """Per instrument k: its bar starts (N_k,) datetime64 and features (N_k, V) in feature_names order ->
    (N_k, I * C) float32, slot j = instrument j's CROSS_FEATURES at row i's bar start and its presence.
    One table over the union of bar starts, filled and read by searchsorted: no per-row Python."""
    cols = [list(feature_names).index(f) for f in CROSS_FEATURES]
    return _aligned(timestamps, [np.asarray(x)[:, cols] for x in features], presence=True)


def cross_moves(timestamps: Sequence[np.ndarray], moves: Sequence[np.ndarray],
                lags: int = CROSS_MOVE_LAGS) -> list[np.ndarray]:
    """Per instrument k: its bar starts (N_k,) and one-bar moves (N_k,) (return over its anchor's expected std) ->
    (N_k, I * lags) float32, slot j = instrument j's moves of its bar at row i's bar start and the lags - 1 bars
    before it (zeros where it has no bar at that start). Causal: no bar after row i's own."""
    lagged = []
    for m in moves:
        m = np.asarray(m, dtype=np.float32)
        lagged.append(np.stack([np.concatenate([np.zeros(k, np.float32), m[: len(m) - k]]) for k in range(lags)], 1))
    return _aligned(timestamps, lagged, presence=False)


def _aligned(timestamps: Sequence[np.ndarray], values: Sequence[np.ndarray], presence: bool) -> list[np.ndarray]:
    """Per instrument k: bar starts (N_k,) and values (N_k, W) -> per instrument (N_k, I * (W + presence)): every
    instrument's values at row i's bar start (zeros where it has no bar), then 1 where it has one. One table over
    the union of bar starts, filled and read by searchsorted: no per-row Python."""
    stamps = [np.asarray(t).astype("datetime64[ns]").astype(np.int64) for t in timestamps]
    union = np.unique(np.concatenate(stamps)) if stamps else np.empty(0, np.int64)
    width = (values[0].shape[1] if len(values) else 0) + int(presence)
    table = np.zeros((len(union), len(stamps), width), dtype=np.float32)
    for j, (t, x) in enumerate(zip(stamps, values)):
        at = np.searchsorted(union, t)
        table[at, j, : x.shape[1]] = x
        if presence:
            table[at, j, -1] = 1.0
    return [table[np.searchsorted(union, t)].reshape(len(t), -1) for t in stamps]
