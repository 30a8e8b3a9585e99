"""Real Hydra composition of conf/: every option composes, validates and instantiates."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from omegaconf import OmegaConf

from migt_train.config.schema import validate
from migt_train.errors import MigtError

CONF = Path(__file__).resolve().parents[1] / "conf"
GROUPS = ["data", "model", "optimizer", "scheduler", "quantiles", "loss", "trainer", "logger",
          "evaluation", "experiment"]


def make_cfg(*overrides: str):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(config_name="config", overrides=list(overrides))


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


@pytest.mark.parametrize("group,option", [(g, o) for g in GROUPS for o in options(g)])
def test_every_option_composes_and_instantiates(group: str, option: str, tmp_path: Path) -> None:
    extra = ["data.path=bars.csv"] if (group, option) == ("data", "ohlcv") else []
    cfg = make_cfg(f"{group}={option}", *extra)
    validate(cfg)
    assert "${" not in OmegaConf.to_yaml(OmegaConf.to_container(cfg, resolve=True))
    model = instantiate(cfg.model)
    assert model.target_mean.shape == (len(cfg.data.horizons),)  # one scaling entry per horizon
    params = [torch.nn.Parameter(torch.zeros(2))]
    optimizer = instantiate(cfg.optimizer)(params)
    assert optimizer.param_groups[0]["lr"] > 0
    instantiate(cfg.scheduler)(optimizer)
    loss = instantiate(cfg.loss)
    assert loss.quantiles == list(cfg.quantiles.levels)
    if group == "logger":
        logger = instantiate(cfg.logger, run_dir=tmp_path, run_config={"a": 1})
        logger.log_metrics({"x": 1.0}, step=1)
        logger.finish()


def test_user_values_are_group_defaults() -> None:
    cfg = make_cfg("experiment=nq_full")
    assert cfg.optimizer.lr == 1e-4 and cfg.optimizer.weight_decay == 0.01
    assert list(cfg.optimizer.betas) == [0.9, 0.999]
    assert (cfg.scheduler.warmup_steps, cfg.scheduler.t_0, cfg.scheduler.t_mult) == (1000, 10, 2)
    assert cfg.scheduler.eta_min == 1e-6
    assert (cfg.trainer.batch_size, cfg.trainer.gradient_accumulation_steps) == (128, 2)
    assert cfg.trainer.early_stopping_patience == 10 and cfg.trainer.save_top_k == 3
    assert list(cfg.quantiles.levels) == [0.05, 0.1, 0.25, 0.5, 0.75, 0.89, 0.94]
    assert cfg.model.d_model == 256 and cfg.model.n_temporal_layers == 4
    assert cfg.data.horizons == [3, 6, 12, 24, 48] and cfg.data.max_seq_len == 288


def test_counts_flow_from_data_and_quantiles() -> None:
    cfg = make_cfg("data.max_seq_len=24", "data.bar_minutes=60", "data.horizons=[1,2,4]",
                   "quantiles=deciles")
    validate(cfg)
    m = cfg.model
    assert (m.max_seq_len, m.bars_per_day, m.n_horizons, m.n_quantiles) == (24, 24, 3, 9)
    assert m.n_variables == 24


@pytest.mark.parametrize(
    "override,key",
    [
        ("optimizer.lr=abc", "optimizer.lr"),
        ("optimizer.lr=-0.001", "optimizer.lr"),
        ("quantiles.levels=[0.5,0.1,0.9]", "quantiles.levels"),
        ("quantiles.levels=[0.0,0.5,0.9]", "quantiles.levels"),
        ("quantiles.levels=[0.1,0.5,1.2]", "quantiles.levels"),
        ("+trainer.batchsize=3", "trainer.batchsize"),
        ("trainer.batch_size=0", "trainer.batch_size"),
        ("data.horizons=[6,3]", "data.horizons"),
        ("data.bar_minutes=7", "data.bar_minutes"),
        ("model.n_heads=5", "model.n_heads"),
        ("model.head_shape=round", "model.head_shape"),
        ("data.vol_anchor=false", "model.head_shape"),  # the quickstart's fixed shape is one of y / sigma_h
        ("+data.synthetic.bogus=1", "data.synthetic.bogus"),
        ("trainer.mixed_precision=maybe", "trainer.mixed_precision"),
        # _target_ groups: checked against the target's signature and its own value rules
        ("+optimizer.momentum=0.9", "optimizer.momentum"),
        ("optimizer.betas=[0.9,1.5]", "optimizer.betas"),
        ("+model.bogus=1", "model.bogus"),
        ("model.dropout=abc", "model.dropout"),
        ("scheduler.t_0=0", "scheduler.t_0"),
        ("loss.crossing_weight=-1", "loss.crossing_weight"),
        ("model._target_=migt_train.model.Nope", "model._target_"),
    ],
)
def test_bad_values_rejected_naming_the_key(override: str, key: str) -> None:
    cfg = make_cfg(override)
    with pytest.raises(MigtError, match=f"'{key}'"):
        validate(cfg)


def test_ohlcv_without_path_is_rejected() -> None:
    with pytest.raises(MigtError, match="data.path"):
        validate(make_cfg("data=ohlcv"))


def test_synthetic_yaml_lists_every_generator_default() -> None:
    from dataclasses import asdict

    from migt_train.data.synthetic import SyntheticConfig

    cfg = make_cfg("experiment=nq_full")  # the other presets resize the market
    assert OmegaConf.to_container(cfg.data.synthetic) == asdict(SyntheticConfig())


def test_data_yaml_states_the_schema_defaults_in_its_order() -> None:
    """conf/data/synthetic.yaml sets every data.* key to DataSchema's default (the one definition), so
    a key left out of a mapping given to load_market means what the yaml says."""
    from dataclasses import asdict

    from migt_train.data.schema import DataSchema

    composed = OmegaConf.to_container(make_cfg("experiment=nq_full").data, resolve=True)
    composed.pop("synthetic")
    defaults = asdict(DataSchema())
    defaults.pop("synthetic")
    assert list(composed) == list(defaults)
    # horizons and max_seq_len (bars) are derived from the times and the bar size, in the yaml as in the schema
    assert defaults["horizons"] is None and defaults["max_seq_len"] is None
    derived = asdict(DataSchema.from_config({}))
    derived.pop("synthetic")
    assert composed == derived


def test_data_schema_from_config_fills_left_out_keys_and_names_a_bad_one() -> None:
    from migt_train.data.schema import DataSchema

    s = DataSchema.from_config({"bar_minutes": 15, "horizons": [1, 4]})
    assert (s.bar_minutes, s.horizons, s.max_seq_len, s.start_minute, s.end_minute) == (15, [1, 4], 96, 18 * 60, None)
    assert s.split.by == "fraction" and s.split.val_fraction == 0.15
    with pytest.raises(MigtError, match="'data.horizons'"):
        DataSchema.from_config({"horizons": [4, 1]})
    with pytest.raises(MigtError, match="data.session_end"):
        DataSchema.from_config({"session_end": "25:00"})


@pytest.mark.parametrize("key", ["evaluation.seasonal_blend", "evaluation.price_tick", "data.vol_anchor_leverage",
                                 "trainer.beat_initial"])
def test_removed_keys_are_refused(key: str) -> None:
    """Keys whose code was removed fail by name, as an override and as an added key, never silently."""
    from hydra.errors import ConfigCompositionException

    with pytest.raises(ConfigCompositionException, match=f"Could not override '{key}'"):
        make_cfg(f"{key}=true")
    with pytest.raises(MigtError, match=f"'{key}'"):
        validate(make_cfg(f"+{key}=true"))


def test_bar_size_alone_sets_horizons_and_window_in_bars() -> None:
    """The horizons (15m .. 4h) and the 24 h lookback are times: data.bar_minutes=15 alone gives 1..16-bar
    horizons and a 96-bar window, in the model too and in the recorded config; bars given explicitly win."""
    from migt_train.config.schema import resolved_container
    from migt_train.data.returns import horizon_name
    from migt_train.data.schema import DataSchema

    cfg = make_cfg("data.bar_minutes=15")
    validate(cfg)
    record = resolved_container(cfg)
    assert record["data"]["horizons"] == [1, 2, 4, 8, 16] and record["data"]["max_seq_len"] == 96
    assert record["model"]["n_horizons"] == 5 and record["model"]["max_seq_len"] == 96
    assert [horizon_name(h, 15) for h in record["data"]["horizons"]] == ["15m", "30m", "1h", "2h", "4h"]
    default = resolved_container(make_cfg())["data"]  # 5-minute bars: as before
    assert (default["horizons"], default["max_seq_len"]) == ([3, 6, 12, 24, 48], 288)
    given = make_cfg("data.bar_minutes=15", "data.horizons=[1,4]", "data.max_seq_len=48")
    validate(given)
    assert list(given.data.horizons) == [1, 4] and given.model.n_horizons == 2 and given.model.max_seq_len == 48
    s = DataSchema.from_config({"bar_minutes": 60, "horizon_minutes": [60, 240], "lookback_hours": 48})
    assert (s.horizons, s.max_seq_len) == ([1, 4], 48)


@pytest.mark.parametrize("overrides,key", [
    (["data.bar_minutes=45"], "data.horizon_minutes"),  # 15 minutes is not a whole number of 45-minute bars
    (["data.horizon_minutes=[15,22]"], "data.horizon_minutes"),
    (["data.lookback_hours=0.1"], "data.lookback_hours"),
    (["data.bar_minutes=7"], "data.bar_minutes"),
    (["data.horizons=null"], "data.horizons"),
])
def test_a_time_that_is_not_whole_bars_is_one_error_naming_the_key(overrides, key) -> None:
    with pytest.raises(MigtError, match=f"^config key '{key}': ") as e:
        validate(make_cfg(*overrides))
    assert "\n" not in str(e.value)
