"""The steps of load_market (data/assemble.py) per instrument: a source's bars (synthetic market, the user's
file) -> cached features, and what is known at each row about the horizons ahead."""

from __future__ import annotations

import dataclasses
import hashlib
import logging
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pandas as pd
import torch
from omegaconf import DictConfig, OmegaConf

from migt_train.data.sources import cache
from migt_train.data.sources.calendar import time_info
from migt_train.volatility.events import event_bars, event_features
from migt_train.data.features import FEATURE_NAMES, FEATURE_VERSION, FEATURE_WARMUP, compute_features, warmup_rows
from migt_train.data.sources.ohlcv import COLUMNS as OHLCV_COLUMNS, read_ohlcv
from migt_train.data.sources.series import SeriesBars, series_bars
from migt_train.data.schema import DataSchema
from migt_train.data.splits import check_split_config
from migt_train.data.synthetic import SyntheticConfig, config_key, generate
from migt_train.data.returns import horizon_name
from migt_train.volatility.anchor import AnchorFit, anchor_realized_context, anchor_sigma, clip_context, fit_anchor
from migt_train.errors import MigtError
from migt_train.volatility.realized import bar_variance, volume_profile

log = logging.getLogger(__name__)

# version of the file -> bars path (reading, rolls, aggregation); part of the feature cache key
BARS_VERSION = 3


def _plain(cfg: Mapping | None) -> dict:
    if isinstance(cfg, DictConfig):
        return OmegaConf.to_container(cfg, resolve=True)  # type: ignore[return-value]
    return dict(cfg or {})


def synthetic_config(cfg: Any) -> SyntheticConfig:
    """data.synthetic (mapping or None) -> SyntheticConfig; unknown keys are an error."""
    values = _plain(cfg)
    fields = {f.name: f for f in dataclasses.fields(SyntheticConfig)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise MigtError(f"data.synthetic: unknown key{'s' if len(unknown) > 1 else ''} {', '.join(unknown)} (known: {', '.join(fields)})")
    out = SyntheticConfig(**{k: v for k, v in values.items() if v is not None})
    if out.n_days < 1:
        raise MigtError(f"data.synthetic.n_days: must be >= 1, got {out.n_days}")
    if out.student_t_df <= 2:
        raise MigtError(f"data.synthetic.student_t_df: must be > 2 for a finite variance, got {out.student_t_df}")
    if min(out.garch_alpha, out.garch_gamma, out.garch_beta) < 0 or not out.garch_alpha + out.garch_gamma / 2 + out.garch_beta < 1:
        raise MigtError("data.synthetic: need garch_alpha, garch_gamma, garch_beta >= 0 and garch_alpha + garch_gamma / 2 + garch_beta < 1")
    if not 0 <= out.jump_prob <= 1 or out.jump_scale < 0:
        raise MigtError(f"data.synthetic: need jump_prob in [0, 1] and jump_scale >= 0 (got {out.jump_prob}, {out.jump_scale})")
    if min(out.macro_decay_minutes, out.fomc_decay_minutes) <= 0 or min(out.employment_spike, out.cpi_spike, out.minor_spike, out.fomc_spike) < 1:
        raise MigtError("data.synthetic: release spikes must be >= 1 and their decay minutes > 0")
    if not 0 <= out.sv_persistence < 1:
        raise MigtError(f"data.synthetic.sv_persistence: must be in [0, 1), got {out.sv_persistence}")
    if out.intrabar_steps < 1 or out.oracle_paths < 2:
        raise MigtError("data.synthetic: intrabar_steps must be >= 1 and oracle_paths >= 2")
    if out.instruments < 1 or out.lead_bars < 0 or not (0 <= out.common_vol_share <= 1 and 0 <= out.common_shock_share <= 1):
        raise MigtError("data.synthetic: instruments must be >= 1, lead_bars >= 0 and common_vol_share, "
                        f"common_shock_share in [0, 1] (got {out.instruments}, {out.lead_bars}, {out.common_vol_share}, "
                        f"{out.common_shock_share})")
    if out.member is not None and not 0 <= out.member < out.instruments:
        raise MigtError(f"data.synthetic.member: must be null or a member of the family, 0..{out.instruments - 1} "
                        f"(data.synthetic.instruments={out.instruments}), got {out.member}")
    if out.volume_lead_bars < 0 or (out.volume_lead_bars and out.instruments > 1):
        raise MigtError(f"data.synthetic.volume_lead_bars: must be >= 0, and 0 in a family of markets "
                        f"(data.synthetic.instruments={out.instruments}), got {out.volume_lead_bars}")
    return out


def synthetic_bars(syn: SyntheticConfig, s: DataSchema) -> pd.DataFrame:
    """The generated market with its latent state, from the cache when already generated."""
    key = config_key(syn, s.bar_minutes, s.session_tz, s.start_minute)
    path = cache.cache_path(s.cache_path, "synthetic", key)
    bars = cache.read(path)
    if bars is None:
        bars = generate(syn, s.bar_minutes, s.session_tz, s.start_minute)
        cache.write(path, bars, key)
    return bars


def synthetic_family_bars(syn: SyntheticConfig, s: DataSchema) -> list[pd.DataFrame]:
    """data.synthetic.instruments > 1: each member's generated market with its latent state, cached per member."""
    from migt_train.data.synthetic.family import generate_family

    key = config_key(syn, s.bar_minutes, s.session_tz, s.start_minute)
    paths = [cache.cache_path(s.cache_path, "synthetic", {**key, "member": j}) for j in range(syn.instruments)]
    frames = [cache.read(p) for p in paths]
    if any(f is None for f in frames):
        frames = generate_family(syn, s.bar_minutes, s.session_tz, s.start_minute)
        for j, (p, f) in enumerate(zip(paths, frames)):
            cache.write(p, f, {**key, "member": j})
    return frames  # type: ignore[return-value]


def file_digest(path: Path) -> str:
    """sha256 of the file's content: the cache follows the data, not the file's name or mtime."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def file_bars(path: Path, s: DataSchema, trained: bool = False) -> SeriesBars:
    """The file -> bars of s.bar_minutes (timestamp = bar start, UTC), their segment ids (a new one after
    each contract roll and long gap), the roll record (sources/series.py). `trained`: s is a trained run's."""
    return series_bars(read_ohlcv(path, sort=s.sort, timezone=s.timezone), s, str(path), trained)


def featurise(bars: pd.DataFrame, segment: np.ndarray, source: str) -> pd.DataFrame:
    """timestamp, the 24 features (float32), _close (float64), _raw_row, _segment: bars after each segment's
    feature warm-up (a segment too short to warm up is dropped). Segments never share a rolling window."""
    parts = []
    bounds = np.flatnonzero(np.diff(segment)) + 1
    for lo, hi in zip(np.r_[0, bounds], np.r_[bounds, len(segment)]):
        if hi - lo <= FEATURE_WARMUP and len(bounds):
            log.info("%s: segment of %d bars from %s is shorter than the feature warm-up; skipped",
                     source, hi - lo, bars["timestamp"].iloc[lo])
            continue
        seg_bars = bars.iloc[lo:hi]
        feats = compute_features(seg_bars)
        first = warmup_rows(feats, source)
        part = pd.DataFrame(feats[first:].astype(np.float32), columns=FEATURE_NAMES)
        part.insert(0, "timestamp", seg_bars["timestamp"].to_numpy()[first:])
        part["_close"] = seg_bars["close"].to_numpy(np.float64)[first:]
        part["_raw_row"] = np.arange(lo + first, hi, dtype=np.int64)
        part["_segment"] = np.int64(segment[lo])
        parts.append(part)
    if not parts:
        raise MigtError(f"{source}: too few bars ({len(bars)} rows): the feature warm-up needs {FEATURE_WARMUP + 1} bars in one contract")
    return pd.concat(parts, ignore_index=True)


def _processed(s: DataSchema, identity: dict, load_bars) -> tuple[pd.DataFrame, dict | None]:
    """The featurised bars and the roll record (None for the synthetic market), from the cache when the
    same source was processed with the same settings before."""
    key = {"features": FEATURE_VERSION, "names": FEATURE_NAMES, "bars": BARS_VERSION,
           "bar_minutes": s.bar_minutes, **identity}
    path = cache.cache_path(s.cache_path, "features", key)
    frame = cache.read(path)
    if frame is not None:
        return frame, cache.read_meta(path).get("rolls")
    series = load_bars()
    frame = featurise(series.bars, series.segment, identity.get("path", "data"))
    cache.write(path, frame, key, meta={"rolls": series.record})
    return frame, series.record


def check_data_config(cfg: Any, training: bool = True) -> None:
    """Raise MigtError naming the first bad `data.*` value, without reading or generating any data.
    `training`: the config trains a model, so it needs disjoint splits (not `data.split.by=all`)."""
    s = DataSchema.from_config(cfg)
    split = s.split
    if training and split.by == "all":
        raise MigtError("config key 'data.split.by': all is for scoring a trained run on another file "
                        "(python -m migt_train.evaluate); training needs fraction or date")
    check_split_config(str(split.by), split.val_fraction, split.test_fraction, split.val_start, split.test_start)
    if s.source == "synthetic":
        synthetic_config(s.synthetic)


def run_bars(cfg: Any) -> SeriesBars:
    """The bars a run with this data config reads (before feature warm-up): the synthetic market or the
    file through the same path as load_market."""
    check_data_config(cfg)
    s = DataSchema.from_config(cfg)
    if s.source == "synthetic":
        raw = synthetic_bars(synthetic_config(s.synthetic), s)[list(OHLCV_COLUMNS)]
        return SeriesBars(raw, np.zeros(len(raw), np.int64), None, None, float(s.bar_minutes))
    return file_bars(Path(str(s.path)).expanduser(), s)


def _horizon_context(s: DataSchema, frame: pd.DataFrame, ts: np.ndarray, info: dict, start: np.ndarray,
                     splits: dict, fit: AnchorFit | None) -> tuple[dict[str, torch.Tensor], AnchorFit | None]:
    """What a forecaster knows at each row about the horizons ahead, when switched on: the causal
    volatility anchor (fitted on the bars the training windows see unless a trained run's fit is given;
    with the release calendar on, it includes the releases' announcement effects) and the scheduled-release
    features."""
    fit_bars, train = None, None
    if s.vol_anchor and fit is None:
        train = splits["train"]
        if len(train) == 0:
            raise MigtError("data.vol_anchor: the training split is empty (0 rows); nothing to fit the anchor on")
        fit_bars = slice(int(start[train[0]]), int(train[-1]) + 1)
    return horizon_context(s, ts, frame, info["bar_in_day"], fit, fit_bars, train_rows=train)


def horizon_context(s: DataSchema, ts: np.ndarray, frame: pd.DataFrame, bar_in_day: np.ndarray, fit: AnchorFit | None,
                    fit_bars: slice | None = None, future: np.ndarray | None = None, train_rows: np.ndarray | None = None
                    ) -> tuple[dict[str, torch.Tensor], AnchorFit | None]:
    """-> ({vol_anchor, realized, events} as switched on, the anchor fit). `fit`: a trained run's fit, filtered
    with its parameters fixed (else fitted on fit_bars). `future`: open times of the bars after the last row
    (their calendar is known in advance), so the last rows' horizons see the releases and bars of day ahead.
    `realized` (with the anchor): the recent range variance relative to the anchor's expectation
    (vol_anchor.anchor_realized_context)."""
    n = len(ts)
    out: dict[str, torch.Tensor] = {}
    returns = frame["log_return"].to_numpy(np.float64)
    gk = bar_variance(frame[FEATURE_NAMES].to_numpy(np.float64), FEATURE_NAMES)
    volume = np.expm1(frame["log_volume"].to_numpy(np.float64))
    if future is not None and len(future):
        ts = np.concatenate([ts, future.astype(ts.dtype)])
        bar_in_day = np.concatenate([bar_in_day, time_info(future, s.session_tz, s.start_minute, s.bar_minutes)["bar_in_day"]])
        returns = np.concatenate([returns, np.zeros(len(future))])  # never read: row t's anchor uses bars <= t
        gk = np.concatenate([gk, np.zeros(len(future))])
        volume = np.concatenate([volume, np.zeros(len(future))])
    events = event_bars(ts, s.bar_minutes) if s.event_calendar else None
    if s.vol_anchor:
        if fit is None:
            assert fit_bars is not None
            fit = fit_anchor(returns, bar_in_day, fit_bars, 24 * 60 // s.bar_minutes, events)
            fit.volume = volume_profile(volume, bar_in_day, fit_bars, 24 * 60 // s.bar_minutes)
        out["vol_anchor"] = torch.from_numpy(np.ascontiguousarray(
            anchor_sigma(fit, returns, gk, bar_in_day, ts, s.horizons, events, train_rows, fit_bars)[:n]))
        realized = anchor_realized_context(fit, returns, gk, volume, bar_in_day, ts, events)[:n]
        out["realized"] = torch.from_numpy(np.ascontiguousarray(clip_context(fit, realized, train_rows)))
    if s.event_calendar:
        out["events"] = torch.from_numpy(np.ascontiguousarray(event_features(events, s.horizons, s.bar_minutes)[:n]))
    return out, fit


def long_tensor(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a, dtype=np.int64))


def market_fields(s: DataSchema, frame: pd.DataFrame, ts: np.ndarray, info: dict, start: np.ndarray,
                  targets: np.ndarray) -> dict[str, Any]:
    """The MarketData fields every bars -> market path shares (training build and the forecast path)."""
    return dict(
        features=torch.from_numpy(np.ascontiguousarray(frame[FEATURE_NAMES].to_numpy(np.float32))),
        feature_names=list(FEATURE_NAMES),
        timestamps=ts,
        bar_in_day=long_tensor(info["bar_in_day"]),
        day_of_week=long_tensor(info["day_of_week"]),
        day_of_month=long_tensor(info["day_of_month"]),
        day_of_year=long_tensor(info["day_of_year"]),
        window_start=long_tensor(start),
        targets=torch.from_numpy(targets.astype(np.float32)),
        horizons=list(s.horizons),
        horizon_names=[horizon_name(h, s.bar_minutes) for h in s.horizons],
        bar_minutes=s.bar_minutes,
        max_seq_len=s.max_seq_len,
    )
