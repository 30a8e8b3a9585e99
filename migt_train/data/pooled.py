"""Several instruments in one MarketData: their markets end to end, one block of rows each, with an instrument id
per row; and each instrument's own market back out of it (a view) for what is fitted or scored per instrument.

A block's windows start inside the block (window_start is offset with it), so no window mixes instruments; its
split rows are the instrument's own, shifted. Everything fitted per instrument (features' scaling, volatility
anchor, baselines, oracle) stays with the instrument: the anchor fits and roll records travel as
{name: ...}, the oracle answers each block with the instrument's own.
"""

from __future__ import annotations

from dataclasses import fields, replace
from typing import Any, Mapping, Sequence

import numpy as np
import torch

from migt_train.data.market import MarketData
from migt_train.errors import MigtError



def _row_tensors(data: MarketData) -> list[str]:
    """The per-row tensors of a MarketData, sliced by a view and concatenated by pool_markets as they are
    (window_start is offset as well, the instrument ids are set)."""
    return [f.name for f in fields(data) if f.init and f.name not in ("window_start", "instrument")
            and isinstance(getattr(data, f.name), torch.Tensor)]


class PooledOracle:
    """The instruments' own oracles behind one `quantiles(rows, levels)` over the pooled rows."""

    def __init__(self, oracles: Mapping[str, Any], bounds: Mapping[str, tuple[int, int]]):
        self.oracles = dict(oracles)
        self.bounds = dict(bounds)

    def quantiles(self, rows: np.ndarray, levels: Sequence[float]) -> np.ndarray:
        rows = np.asarray(rows, dtype=np.int64).ravel()
        out: np.ndarray | None = None
        for name, (lo, hi) in self.bounds.items():
            at = np.flatnonzero((rows >= lo) & (rows < hi))
            if not len(at):
                continue
            q = np.asarray(self.oracles[name].quantiles(rows[at] - lo, levels))
            if out is None:
                out = np.full((len(rows), *q.shape[1:]), np.nan)
            out[at] = q
        if out is None:
            raise IndexError("oracle rows outside every instrument's block")
        return out


def pool_markets(markets: Mapping[str, MarketData], instruments: Sequence[str]) -> MarketData:
    """{name: single-instrument market} -> one MarketData, blocks in the order of `instruments` (the model's
    instrument ids; a name missing from `markets` has no rows, e.g. evaluate on a subset). Every market must
    share features, horizons, bar size and window length."""
    names = [n for n in instruments if n in markets]
    unknown = sorted(set(markets) - set(instruments))
    if unknown:
        raise MigtError(f"data.path: instrument{'s' if len(unknown) > 1 else ''} {', '.join(unknown)} not among the "
                        f"run's instruments ({', '.join(instruments)})")
    first = markets[names[0]]
    for name in names[1:]:
        m = markets[name]
        for key in ("feature_names", "horizons", "bar_minutes", "max_seq_len", "n_cross"):
            if getattr(m, key) != getattr(first, key):
                raise MigtError(f"data.path: instrument {name} has {key} {getattr(m, key)}, {names[0]} {getattr(first, key)}")
    sizes = [len(markets[n].targets) for n in names]
    offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    bounds = {n: (int(offsets[i]), int(offsets[i + 1])) for i, n in enumerate(names)}
    cat = {k: torch.cat([getattr(markets[n], k) for n in names]) for k in _row_tensors(first)}
    ids = torch.cat([torch.full((s,), list(instruments).index(n), dtype=torch.long) for n, s in zip(names, sizes)])
    oracles = {n: markets[n].oracle for n in names if markets[n].oracle is not None}
    closes = [markets[n].close for n in names]
    return MarketData(
        **cat,
        feature_names=list(first.feature_names),
        timestamps=np.concatenate([markets[n].timestamps for n in names]),
        window_start=torch.cat([markets[n].window_start + int(offsets[i]) for i, n in enumerate(names)]),
        horizons=list(first.horizons),
        horizon_names=list(first.horizon_names),
        bar_minutes=first.bar_minutes,
        max_seq_len=first.max_seq_len,
        n_cross=first.n_cross,
        splits={k: torch.cat([markets[n].splits[k] + int(offsets[i]) for i, n in enumerate(names)]) for k in first.splits},
        source=first.source,
        oracle=PooledOracle(oracles, {n: bounds[n] for n in oracles}) if len(oracles) == len(names) else None,
        rolls={n: markets[n].rolls for n in names} if any(markets[n].rolls is not None for n in names) else None,
        close=None if any(c is None for c in closes) else np.concatenate(closes),
        anchor_fit={n: markets[n].anchor_fit for n in names} if first.anchor_fit is not None else None,
        instrument=ids,
        instruments=list(instruments),
    )


def instrument_bounds(data: MarketData) -> dict[str, tuple[int, int]]:
    """name -> (first row, end row) of each instrument with rows in `data`, in block order."""
    ids = data.instrument.cpu().numpy()
    present = np.unique(ids)
    lo = np.searchsorted(ids, present, side="left")
    hi = np.searchsorted(ids, present, side="right")
    return {data.instruments[int(i)]: (int(a), int(b)) for i, a, b in zip(present, lo, hi)}


def instrument_view(data: MarketData, name: str) -> MarketData:
    """Instrument `name`'s own market (rows, windows, splits, oracle, anchor fit, rolls) out of a pooled one: a
    single-instrument MarketData, as load_market builds for that instrument alone."""
    bounds = instrument_bounds(data)
    if name not in bounds:
        raise MigtError(f"instrument {name}: not in the data (its instruments: {', '.join(bounds)})")
    lo, hi = bounds[name]
    rows = {k: getattr(data, k)[lo:hi] for k in _row_tensors(data)}
    splits = {}
    for k, v in data.splits.items():
        v = v.cpu()
        splits[k] = v[(v >= lo) & (v < hi)] - lo
    oracle = data.oracle.oracles.get(name) if isinstance(data.oracle, PooledOracle) else None
    per = lambda d: None if d is None else d.get(name)  # noqa: E731
    out = replace(
        data,
        **rows,
        timestamps=data.timestamps[lo:hi],
        window_start=data.window_start[lo:hi] - lo,
        splits=splits,
        oracle=oracle,
        rolls=per(data.rolls),
        close=None if data.close is None else data.close[lo:hi],
        anchor_fit=per(data.anchor_fit),
        instrument=None,
        instruments=[],
    )
    return out


def split_rows_of(data: MarketData, rows: torch.Tensor) -> dict[str, np.ndarray]:
    """name -> positions in `rows` (pooled row indices) of each instrument's rows, in block order."""
    r = torch.as_tensor(rows).cpu().numpy()
    return {n: np.flatnonzero((r >= lo) & (r < hi)) for n, (lo, hi) in instrument_bounds(data).items()}


def is_pooled(data: MarketData) -> bool:
    return len(data.instruments) > 1


__all__ = ["PooledOracle", "instrument_bounds", "instrument_view", "is_pooled", "pool_markets", "split_rows_of"]
