"""load_market(cfg.data) -> MarketData: each instrument's source -> validated bars -> cached features -> targets,
windows, time info; splits purged at boundaries shared in time by every instrument; each instrument's volatility
anchor fitted on its own training bars (and its oracle, synthetic markets); several instruments pooled into one
MarketData (data/pooled.py), with each other's bars as inputs when data.cross_asset is on."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
import torch

from migt_train.data.build import _horizon_context, _processed, long_tensor, market_fields
from migt_train.data.cross_asset import cross_block, cross_moves, cross_names
from migt_train.data.features import FEATURE_WARMUP
from migt_train.data.instruments import Source, check_instruments, sources
from migt_train.data.market import MarketData
from migt_train.data.pooled import pool_markets
from migt_train.data.returns import log_return_targets, sample_rows, segment_first_rows, window_starts
from migt_train.data.schema import DataSchema
from migt_train.data.sources.calendar import time_info
from migt_train.data.splits import pooled_splits
from migt_train.errors import MigtError
from migt_train.volatility.anchor import AnchorFit
from migt_train.volatility.realized import BAR_MOVE


@dataclass
class _Rows:
    """One instrument's featurised bars and what its samples need."""

    source: Source
    frame: pd.DataFrame
    rolls: dict | None
    ts: np.ndarray
    info: dict
    targets: np.ndarray
    start: np.ndarray
    samples: np.ndarray


def _rows(src: Source, s: Any) -> _Rows:
    frame, rolls = _processed(s, src.identity, src.read)
    lookback_bars = min(s.max_seq_len, int(s.lookback_hours * 60 // s.bar_minutes))
    max_h = max(s.horizons)
    segment = frame["_segment"].to_numpy()
    longest = int(np.max(np.bincount(segment - segment.min()))) if len(frame) else 0
    if longest < lookback_bars + max_h + 1:
        raw_rows = int(frame["_raw_row"].iloc[-1]) + 1 if len(frame) else 0
        where = " in one contract between rolls" if rolls and rolls.get("rolls") else ""
        raise MigtError(
            f"{src.label}: too few bars ({raw_rows} rows): need feature warm-up {FEATURE_WARMUP} + lookback {lookback_bars} "
            f"+ longest horizon {max_h} + 1 = {FEATURE_WARMUP + lookback_bars + max_h + 1}{where}"
        )
    ts = frame["timestamp"].to_numpy().astype("datetime64[ns]")
    targets = log_return_targets(frame["_close"].to_numpy(), s.horizons, segment)
    start, full = window_starts(ts, int(round(s.lookback_hours * 3600e9)), s.max_seq_len, segment_first_rows(segment))
    samples = sample_rows(targets, full)
    if len(samples) == 0:
        raise MigtError(f"{src.label}: no sample has a full lookback and all horizons ({len(frame)} rows after warm-up)")
    return _Rows(src, frame, rolls, ts, time_info(ts, s.session_tz, s.start_minute, s.bar_minutes), targets, start, samples)


def model_instruments(names: Sequence[str | None], run_instruments: Sequence[str] | None, cross_asset: bool) -> list[str]:
    """The model's instrument names ([] for one instrument): the data's own, or a trained run's (these data's
    instruments among them)."""
    pooled_run = run_instruments is not None and len(run_instruments) > 1
    if None in names and pooled_run:
        raise MigtError(f"config key 'data.path': the run pools several instruments ({', '.join(run_instruments)}); "
                        "name the files with a map {NAME: file, ...}")
    if len(names) == 1 and not pooled_run:
        if cross_asset:
            raise MigtError("config key 'data.cross_asset': needs several instruments (data.path as a map or list of "
                            "files, or data.synthetic.instruments > 1)")
        return []
    return check_instruments([str(n) for n in names], run_instruments if pooled_run else None, cross_asset)


def load_market(cfg: Any, anchor_fit: AnchorFit | Mapping[str, AnchorFit] | None = None,
                instruments: Sequence[str] | None = None, trained: bool = False,
                cross_body: bool | None = None) -> MarketData:
    """cfg: the data config (DictConfig or mapping) -> MarketData. anchor_fit: a trained run's volatility anchor
    (data.vol_anchor; {name: fit} for a pooled run), applied with its parameters fixed instead of fitting one on
    these bars. instruments: a trained pooled run's instrument names (its model's ids); these data's must be
    among them. trained: cfg is a trained run's (its bar size cannot change). cross_body: with data.cross_asset,
    whether the body gets the cross variables (None: only without the anchor; see with_cross_inputs)."""
    s = DataSchema.from_config(cfg)
    rows = [_rows(src, s) for src in sources(cfg, s, trained)]
    names = [r.source.name for r in rows]
    model_names = model_instruments(names, instruments, s.cross_asset)
    splits = pooled_splits(
        [(r.samples, r.ts, r.start) for r in rows],
        max(s.horizons),
        by=str(s.split.by),
        val_fraction=s.split.val_fraction,
        test_fraction=s.split.test_fraction,
        val_start=s.split.val_start,
        test_start=s.split.test_start,
        tz=s.session_tz,
        names=[str(n) for n in names],
    )
    markets = {}
    for r, split in zip(rows, splits):
        fit = anchor_fit if not model_names else anchor_fit_of(anchor_fit, str(r.source.name))
        context, fit = _horizon_context(s, r.frame, r.ts, r.info, r.start, split, fit)
        markets[r.source.name] = MarketData(
            **context,
            anchor_fit=fit,
            **market_fields(s, r.frame, r.ts, r.info, r.start, r.targets),
            splits={k: long_tensor(v) for k, v in split.items()},
            source=s.source,
            oracle=None if r.source.oracle is None else r.source.oracle(r.frame),
            rolls=r.rolls,
            close=r.frame["_close"].to_numpy(np.float64),
        )
    if not model_names:
        return markets[names[0]]
    if s.cross_asset:
        markets = with_cross_inputs(markets, model_names, cross_body)
    return pool_markets(markets, model_names)


def anchor_fit_of(anchor_fit: Any, name: str) -> AnchorFit | None:
    if anchor_fit is None:
        return None
    if not isinstance(anchor_fit, Mapping) or name not in anchor_fit:
        raise MigtError(f"data.vol_anchor: no stored volatility anchor fit for instrument {name}")
    return anchor_fit[name]


def with_cross_inputs(markets: Mapping[str, MarketData], instruments: Sequence[str],
                      body: bool | None = None) -> dict[str, MarketData]:
    """Each market with the other instruments' bars as inputs (data/cross_asset.py), a slot per instrument of
    `instruments`, read at the market's own bar starts. With the anchor's context: every instrument's recent bar
    moves appended to its `realized` (n_cross), which the heads read. Without it: the cross-asset block appended
    to its features, for the body's variable stage.

    Not both: the anchored presets train only the heads, on a frozen body (trainer.body_lr_scale 0), where the
    extra variables blur the random features the heads read (pooled val loss worse on the E-minis and on the
    synthetic family with them than without; docs/results.md, 2026-12-07 evening). body=True: both, as pooled
    runs with the anchor were trained before that (their model.n_variables counts the block; from_run.cross_body)."""
    missing = [n for n in instruments if n not in markets]
    if missing:
        raise MigtError(f"data.cross_asset: the windows see every instrument's bars; no data for {', '.join(missing)}")
    stamps = [markets[n].timestamps for n in instruments]
    anchored = bool(markets[instruments[0]].realized.shape[1])
    out = dict(markets)
    if body or (body is None and not anchored):
        blocks = cross_block(stamps, [markets[n].features.numpy() for n in instruments],
                             markets[instruments[0]].feature_names)
        names = cross_names(instruments)
        out = {n: replace(markets[n], features=torch.cat([markets[n].features, torch.from_numpy(b)], dim=1),
                          feature_names=[*markets[n].feature_names, *names]) for n, b in zip(instruments, blocks)}
    if anchored:
        moves = cross_moves(stamps, [markets[n].realized[:, BAR_MOVE].numpy() for n in instruments])
        out = {n: replace(out[n], realized=torch.cat([out[n].realized, torch.from_numpy(m)], dim=1), n_cross=m.shape[1])
               for n, m in zip(instruments, moves)}
    return out
