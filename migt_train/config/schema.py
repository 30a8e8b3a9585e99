"""Config rules, each in one place: a bad value stops the run before any work, naming its key.

- Plain-data groups (data, quantiles, trainer, evaluation) have typed dataclass schemas, registered
  in Hydra's ConfigStore as `schema/<group>`; the composed group is merged onto its schema, so wrong
  types and unknown keys fail by key. Their value rules live with the code that reads them
  (DataSchema.from_config via data.build.check_data_config, TrainerConfig.validate).
- `_target_` groups (model, optimizer, scheduler, loss, logger) are checked against what they
  instantiate (migt_train.config.checks): a new optimizer or model is one yaml file.
- Rules that tie groups together (loss.quantiles = quantiles.levels, scheduler.eta_min <= optimizer.lr)
  are here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, List, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

import migt_train  # noqa: F401  (registers the ${migt.*} resolvers)
from migt_train.data.build import check_data_config
from migt_train.volatility.events import N_EVENT_FEATURES
from migt_train.volatility.realized import N_REALIZED
from migt_train.data.schema import DataSchema
from migt_train.data.synthetic import SyntheticConfig
from migt_train.errors import MigtError, raised_within
from migt_train.evaluation.settings import EvaluationConfig
from migt_train.config.checks import check_target
from migt_train.training.config import TrainerConfig

TARGET_GROUPS = ("model", "optimizer", "scheduler", "loss", "logger")


@dataclass
class QuantilesSchema:
    levels: List[float] = field(default_factory=list)


@dataclass
class RootSchema:
    """Top-level keys; the `_target_` groups are checked by their targets, not here."""

    seed: int = 42
    output_root: str = "outputs"
    tag: Optional[str] = None
    data: DataSchema = field(default_factory=DataSchema)
    quantiles: QuantilesSchema = field(default_factory=QuantilesSchema)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    evaluation: EvaluationConfig = field(default_factory=EvaluationConfig)
    model: Any = None
    optimizer: Any = None
    scheduler: Any = None
    loss: Any = None
    logger: Any = None


SCHEMAS = {"data": DataSchema, "quantiles": QuantilesSchema, "trainer": TrainerConfig,
           "evaluation": EvaluationConfig, "data/synthetic": SyntheticConfig}

_store = ConfigStore.instance()
for _name, _schema in SCHEMAS.items():
    _store.store(group="schema", name=_name.replace("/", "_"), node=_schema)
_store.store(group="schema", name="root", node=RootSchema)


def _first_line(e: Exception) -> str:
    return str(e).strip().splitlines()[0]


def _fail(key: str, rule: str, value: Any) -> None:
    raise MigtError(f"config key '{key}': {rule} (got {value!r})")


def _check_types(plain: dict) -> None:
    """Merge the resolved config onto the schemas in the ConfigStore: types and unknown keys, by key."""
    synthetic = (plain.get("data") or {}).get("synthetic")
    for name, node, prefix in (("root", plain, ""), ("data_synthetic", synthetic or {}, "data.synthetic.")):
        schema = _store.load(f"schema/{name}.yaml").node
        try:
            OmegaConf.merge(schema, node)
        except OmegaConfBaseException as e:
            raise MigtError(f"config key '{prefix}{e.full_key}': {_first_line(e)}") from None


def _check_values(cfg: DictConfig, plain: dict) -> None:
    levels = list(cfg.quantiles.levels)
    if len(levels) < 2:
        _fail("quantiles.levels", "needs at least two levels", levels)
    if any(not 0 < t < 1 for t in levels):
        _fail("quantiles.levels", "every level must lie strictly between 0 and 1", levels)
    if any(b <= a for a, b in zip(levels, levels[1:])):
        _fail("quantiles.levels", "levels must be strictly increasing", levels)
    check_data_config(cfg.data)
    m, data = plain["model"], plain["data"]
    if m.get("vol_anchor") and not data.get("vol_anchor"):
        _fail("model.vol_anchor", "needs data.vol_anchor=true (the data layer computes the anchor)", m["vol_anchor"])
    if m.get("n_event_features", 0) not in (0, N_EVENT_FEATURES if data.get("event_calendar") else 0):
        _fail("model.n_event_features", f"must be {N_EVENT_FEATURES} with data.event_calendar=true, else 0",
              m["n_event_features"])
    if m.get("n_realized", 0) not in (0, N_REALIZED if data.get("vol_anchor") else 0):
        _fail("model.n_realized", f"must be {N_REALIZED} with data.vol_anchor=true, else 0", m["n_realized"])
    if m.get("vol_anchor") and not m.get("anchor_df", 5.0) > 2:
        _fail("model.anchor_df", "must be > 2 (unit-variance Student-t)", m["anchor_df"])
    for group in TARGET_GROUPS:
        check_target(plain[group], group)
    if list(plain["loss"].get("quantiles", levels)) != levels:
        _fail("loss.quantiles", "must equal quantiles.levels", list(plain["loss"]["quantiles"]))
    eta_min, lr = plain["scheduler"].get("eta_min"), plain["optimizer"].get("lr")
    if eta_min is not None and lr is not None and eta_min > lr:
        _fail("scheduler.eta_min", f"must not exceed optimizer.lr={lr}", eta_min)
    TrainerConfig(**plain["trainer"]).validate()


def validate(cfg: DictConfig) -> None:
    """Raise MigtError naming the first bad key; returns silently for a valid config."""
    data = cfg.get("data") if isinstance(cfg, DictConfig) else None
    for key, derived in (("horizons", "data.horizon_minutes"), ("max_seq_len", "data.lookback_hours")):
        # null would leave the model's ${data.*} interpolations without a value
        if isinstance(data, DictConfig) and key in data and not OmegaConf.is_interpolation(data, key) \
                and data[key] is None:
            raise MigtError(f"config key 'data.{key}': null; give bars, or drop the override to follow "
                            f"{derived} and data.bar_minutes")
    try:
        plain = OmegaConf.to_container(cfg, resolve=True)
    except OmegaConfBaseException as e:
        raise (raised_within(e) or MigtError(f"config key '{e.full_key}': {_first_line(e)}")) from None
    for key in ("hydra", "hparams_search"):
        plain.pop(key, None)
    _check_types(plain)
    _check_values(cfg, plain)


def resolved_container(cfg: DictConfig) -> dict:
    """The run's config with every interpolation resolved and Hydra's own node dropped."""
    plain = OmegaConf.to_container(cfg, resolve=True)
    plain.pop("hydra", None)
    return plain
