"""Config resolvers and validation: a bad value stops the run before any work, naming its key."""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, List, Optional

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from migt_train.data.build import check_data_config
from migt_train.data.events import N_EVENT_FEATURES
from migt_train.data.features import FEATURE_NAMES
from migt_train.data.synthetic import SyntheticConfig
from migt_train.errors import MigtError
from migt_train.evaluation.settings import EvaluationConfig
from migt_train.training.trainer import TrainerConfig, validate_trainer_config

# One id per process: Hydra resolves run/sweep dirs more than once, and every resolution must agree.
# The random suffix keeps two runs started in the same second apart.
RUN_ID = time.strftime("%Y-%m-%d_%H-%M-%S") + "_" + secrets.token_hex(3)


def _sqlite_url(path: str) -> str:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{path}"


def register_resolvers() -> None:
    resolvers = {
        "len": lambda seq: len(seq),
        "migt.n_features": lambda: len(FEATURE_NAMES),
        "migt.feature_index": FEATURE_NAMES.index,
        "migt.bars_per_day": lambda bar_minutes: 24 * 60 // int(bar_minutes),
        "migt.n_event_features": lambda on: N_EVENT_FEATURES if on else 0,
        "migt.run_id": lambda: RUN_ID,
        "migt.sqlite_url": _sqlite_url,
    }
    for name, fn in resolvers.items():
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, fn)


register_resolvers()


@dataclass
class SplitSchema:
    by: str = "fraction"
    val_fraction: float = 0.15
    test_fraction: float = 0.15
    val_start: Optional[str] = None
    test_start: Optional[str] = None


@dataclass
class DataSchema:
    source: str = "synthetic"
    path: Optional[str] = None
    bar_minutes: int = 5
    lookback_hours: float = 24
    max_seq_len: int = 288
    horizons: List[int] = field(default_factory=lambda: [3, 6, 12, 24, 48])
    session_tz: str = "America/New_York"
    session_start: str = "18:00"
    sort: bool = False
    cache_dir: Optional[str] = None
    vol_anchor: bool = False
    event_calendar: bool = False
    split: SplitSchema = field(default_factory=SplitSchema)
    synthetic: Optional[Any] = None


@dataclass
class ModelSchema:
    _target_: str = "migt_train.model.MIGTTVDT"
    n_variables: int = 24
    n_horizons: int = 5
    n_quantiles: int = 7
    max_seq_len: int = 288
    bars_per_day: int = 288
    d_model: int = 256
    n_heads: int = 8
    d_ff: int = 1024
    dropout: float = 0.1
    n_temporal_layers: int = 4
    n_variable_layers: int = 2
    head_hidden: int = 128
    tod_dims: int = 32
    dow_dims: int = 16
    dom_dims: int = 16
    doy_dims: int = 32
    patch_len: int = 1
    scale_anchor: Optional[int] = None
    vol_anchor: bool = False
    n_event_features: int = 0
    quantile_levels: Optional[List[float]] = None
    anchor_df: float = 5.0


@dataclass
class OptimizerSchema:
    """Union of the keys of the offered optimizers (adamw, adam, sgd)."""

    _target_: str = "torch.optim.AdamW"
    _partial_: bool = True
    _convert_: Optional[str] = None
    lr: float = 1e-4
    weight_decay: Optional[float] = None
    betas: Optional[List[float]] = None
    eps: Optional[float] = None
    amsgrad: Optional[bool] = None
    momentum: Optional[float] = None
    dampening: Optional[float] = None
    nesterov: Optional[bool] = None


@dataclass
class SchedulerSchema:
    _target_: str = "migt_train.training.schedulers.WarmupCosineScheduler"
    _partial_: bool = True
    warmup_steps: Optional[int] = None
    t_0: Optional[int] = None
    t_mult: Optional[int] = None
    eta_min: Optional[float] = None


@dataclass
class QuantilesSchema:
    levels: List[float] = field(default_factory=list)


@dataclass
class LossSchema:
    _target_: str = "migt_train.training.losses.CombinedQuantileLoss"
    quantiles: List[float] = field(default_factory=list)
    crossing_weight: float = 0.0


@dataclass
class LoggerSchema:
    _target_: str = "migt_train.loggers.NullLogger"
    project: Optional[str] = None
    entity: Optional[str] = None
    mode: Optional[str] = None
    tags: Optional[List[str]] = None


@dataclass
class ConfigSchema:
    seed: int = 42
    output_root: str = "outputs"
    tag: Optional[str] = None
    data: DataSchema = field(default_factory=DataSchema)
    model: ModelSchema = field(default_factory=ModelSchema)
    optimizer: OptimizerSchema = field(default_factory=OptimizerSchema)
    scheduler: SchedulerSchema = field(default_factory=SchedulerSchema)
    quantiles: QuantilesSchema = field(default_factory=QuantilesSchema)
    loss: LossSchema = field(default_factory=LossSchema)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    evaluation: EvaluationConfig = field(default_factory=EvaluationConfig)
    logger: LoggerSchema = field(default_factory=LoggerSchema)


def _check_types(cfg: DictConfig) -> None:
    """Merge a copy into the typed schemas: wrong types and unknown keys fail here, by key."""
    plain = OmegaConf.to_container(cfg, resolve=True)
    for key in ("hydra", "hparams_search"):
        plain.pop(key, None)
    synthetic = (plain.get("data") or {}).get("synthetic")
    for schema, node, prefix in (
        (ConfigSchema, plain, ""),
        (SyntheticConfig, synthetic or {}, "data.synthetic."),
    ):
        try:
            OmegaConf.merge(OmegaConf.structured(schema), node)
        except OmegaConfBaseException as e:
            raise MigtError(f"config key '{prefix}{e.full_key}': {_first_line(e)}") from None


def _first_line(e: Exception) -> str:
    return str(e).strip().splitlines()[0]


def _fail(key: str, rule: str, value: Any) -> None:
    raise MigtError(f"config key '{key}': {rule} (got {value!r})")


def _check_values(cfg: DictConfig) -> None:
    levels = list(cfg.quantiles.levels)
    if len(levels) < 2:
        _fail("quantiles.levels", "needs at least two levels", levels)
    if any(not 0 < t < 1 for t in levels):
        _fail("quantiles.levels", "every level must lie strictly between 0 and 1", levels)
    if any(b <= a for a, b in zip(levels, levels[1:])):
        _fail("quantiles.levels", "levels must be strictly increasing", levels)
    if list(cfg.loss.quantiles) != levels:
        _fail("loss.quantiles", "must equal quantiles.levels", list(cfg.loss.quantiles))

    check_data_config(cfg.data)

    m = cfg.model
    if m.d_model % m.n_heads:
        _fail("model.n_heads", f"must divide model.d_model={m.d_model}", m.n_heads)
    if not 0 <= m.dropout < 1:
        _fail("model.dropout", "must lie in [0, 1)", m.dropout)
    if m.patch_len < 1:
        _fail("model.patch_len", "must be >= 1", m.patch_len)
    if m.get("vol_anchor") and not cfg.data.get("vol_anchor"):
        _fail("model.vol_anchor", "needs data.vol_anchor=true (the data layer computes the anchor)", m.vol_anchor)
    if m.get("n_event_features", 0) not in (0, N_EVENT_FEATURES if cfg.data.get("event_calendar") else 0):
        _fail("model.n_event_features", f"must be {N_EVENT_FEATURES} with data.event_calendar=true, else 0", m.n_event_features)
    if m.get("vol_anchor") and not m.get("anchor_df", 5.0) > 2:
        _fail("model.anchor_df", "must be > 2 (unit-variance Student-t)", m.anchor_df)

    o = cfg.optimizer
    if not o.lr > 0:
        _fail("optimizer.lr", "must be positive", o.lr)
    if o.get("weight_decay") is not None and o.weight_decay < 0:
        _fail("optimizer.weight_decay", "must be >= 0", o.weight_decay)
    if o.get("betas") is not None and (len(o.betas) != 2 or any(not 0 <= b < 1 for b in o.betas)):
        _fail("optimizer.betas", "must be two numbers in [0, 1)", list(o.betas))

    s = cfg.scheduler
    for key, low in (("warmup_steps", 0), ("t_0", 1), ("t_mult", 1), ("eta_min", 0)):
        if s.get(key) is not None and s[key] < low:
            _fail(f"scheduler.{key}", f"must be >= {low}", s[key])
    if s.get("eta_min") is not None and s.eta_min > o.lr:
        _fail("scheduler.eta_min", f"must not exceed optimizer.lr={o.lr}", s.eta_min)

    validate_trainer_config(OmegaConf.to_container(cfg.trainer, resolve=True))


def validate(cfg: DictConfig) -> None:
    """Raise MigtError naming the first bad key; returns silently for a valid config."""
    try:
        OmegaConf.to_container(cfg, resolve=True)
    except OmegaConfBaseException as e:
        raise MigtError(f"config key '{e.full_key}': {_first_line(e)}") from None
    _check_types(cfg)
    _check_values(cfg)


def resolved_container(cfg: DictConfig) -> dict:
    """The run's config with every interpolation resolved and Hydra's own node dropped."""
    plain = OmegaConf.to_container(cfg, resolve=True)
    plain.pop("hydra", None)
    return plain

