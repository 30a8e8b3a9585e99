"""A finished run read back for evaluation and forecasting: its config with overrides applied, best.pt's
model, and its volatility anchor fit.
`evaluate_checkpoint` re-evaluates it into a fresh <run dir>/evaluations/<timestamp>/ (the evaluate CLI).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Sequence

from migt_train.config.overrides import apply_overrides, one_line, parse_overrides
from migt_train.errors import MigtError

# keys of older runs whose code was removed (they did not help across data sets). The anchor's GJR gamma
# (data.vol_anchor_leverage) is read back from vol_anchor.json, so those runs forecast as trained; the
# seasonal blend and the price grid are not applied, their files (seasonal_blend.json, price_grid.json) unread;
# trainer.beat_initial only chose the kept epoch.
REMOVED_KEYS = ("evaluation.seasonal_blend", "evaluation.price_tick", "data.vol_anchor_leverage", "trainer.beat_initial")


def _merged(schema: type, node: Any, key: str) -> Any:
    """The run's `key` section over the schema's defaults (older runs may lack keys); typed, by key."""
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    try:
        return OmegaConf.merge(OmegaConf.structured(schema), node or {})
    except OmegaConfBaseException as e:
        raise MigtError(f"config key '{key}.{e.full_key}': {one_line(e)}") from None


def _levels(cfg: Any) -> list[float]:
    from omegaconf import DictConfig, ListConfig

    q = cfg.get("quantiles")
    if isinstance(q, DictConfig):
        q = q.get("levels")
    if not isinstance(q, ListConfig) or len(q) == 0:
        raise MigtError("config.yaml: quantiles.levels not found")
    return [float(t) for t in q]


def _fit_summary(run_dir: Path, ckpt: dict) -> dict[str, Any]:
    """Training facts come from the run's own metrics.json; the checkpoint fills any gaps."""
    from migt_train.evaluation.settings import FIT_SUMMARY_KEYS

    original: dict[str, Any] = {}
    path = run_dir / "metrics.json"
    if path.is_file():
        try:
            original = json.loads(path.read_text())
        except json.JSONDecodeError:
            logging.getLogger(__name__).warning("%s is not valid JSON; fit summary taken from best.pt", path)
    return {k: original.get(k, ckpt.get(k)) for k in FIT_SUMMARY_KEYS}


def _drop_removed_keys(cfg: Any, cfg_path: Path) -> None:
    """Remove REMOVED_KEYS from an older run's config (so an override of one fails as an unknown key); one
    warning when the run forecast with a removed blend or grid, since its forecasts are now the network's own."""
    on = []
    for key in REMOVED_KEYS:
        section, name = key.split(".")
        node = cfg.get(section)
        if node is not None and name in node and node.pop(name) not in (None, False) and section == "evaluation":
            on.append(key)
    if on:
        logging.getLogger(__name__).warning(
            "%s: %s removed from migt-train and ignored (seasonal_blend.json, price_grid.json are not read): "
            "these forecasts are the network's own", cfg_path, ", ".join(on))


def load_run_config(run_dir: Path, overrides: Sequence[str] = ()) -> tuple[Any, dict, Path, list[float]]:
    """A run directory -> (its config with the overrides applied and resolved, best.pt's contents, best.pt's
    path, quantile levels). Shared by the evaluate and predict CLIs and `load_run`."""
    run_dir = Path(run_dir)
    parsed = parse_overrides(overrides)
    if not run_dir.is_dir():
        raise MigtError(f"{run_dir}: run directory not found")
    ckpt_path = run_dir / "checkpoints" / "best.pt"
    if not ckpt_path.is_file():
        raise MigtError(f"{ckpt_path}: checkpoint not found (the run has not finished a validation epoch?)")

    from omegaconf import DictConfig, OmegaConf

    from migt_train.training.checkpoint import read_checkpoint

    ckpt = read_checkpoint(ckpt_path)
    if "model" not in ckpt:
        raise MigtError(f"{ckpt_path}: not a migt-train checkpoint (no 'model' state)")

    cfg_path = run_dir / "config.yaml"
    try:
        cfg = OmegaConf.load(cfg_path) if cfg_path.is_file() else OmegaConf.create(ckpt.get("config"))
    except Exception as e:
        raise MigtError(f"{cfg_path}: cannot read config ({e})".replace("\n", " ")) from None
    if not isinstance(cfg, DictConfig) or "model" not in cfg or "data" not in cfg:
        raise MigtError(f"{cfg_path}: config without model/data sections (and none in best.pt)")
    _drop_removed_keys(cfg, cfg_path)
    own_source = (cfg.data.get("source"), cfg.data.get("path"))
    trained = OmegaConf.create(OmegaConf.to_container(cfg.data))
    cfg = apply_overrides(cfg, parsed)
    try:
        OmegaConf.resolve(cfg)
        OmegaConf.resolve(trained)
    except Exception as e:
        raise MigtError(f"{cfg_path}: {e}".replace("\n", " ")) from None
    _check_run_shape(trained, cfg.data)
    _say_if_training(run_dir)
    # another file than the run's own: score all of it (after warm-up), unless a split was asked for
    asked_split = any(o.key_or_group.startswith("data.split") for o in parsed)
    if (cfg.data.get("source"), cfg.data.get("path")) != own_source and not asked_split:
        OmegaConf.update(cfg, "data.split.by", "all", force_add=True)
    return cfg, ckpt, ckpt_path, _levels(cfg)


# what the model was built and trained for: no override may change them (a model trained on 5-minute bars
# given hourly ones would label its 15-minute horizons 3 h)
RUN_SHAPE = ("bar_minutes", "horizons", "lookback_hours", "max_seq_len")


def _check_run_shape(trained: Any, data: Any) -> None:
    """The bar size, horizons (in bars) and lookback of the overridden data config are the run's, whatever
    keys produced them; else one MigtError naming the key and the run's value."""
    from migt_train.data.schema import DataSchema

    was, now = DataSchema.from_config(trained, need_path=False), DataSchema.from_config(data, need_path=False)
    for key in RUN_SHAPE:
        a, b = getattr(was, key), getattr(now, key)
        if a != b:
            show = lambda v: f"{v:g}" if isinstance(v, float) else str(v)  # noqa: E731
            raise MigtError(f"data.{key}: the run was trained with data.{key}={show(a)} and its model knows no other; "
                            f"got {show(b)} (drop that override; a file of other bars is read at the run's bar size)")


def _say_if_training(run_dir: Path) -> None:
    """A run still training has a best.pt that is its best epoch so far: it may change at the next epoch."""
    from migt_train.run.record import effective_status, read_status

    record = read_status(run_dir)
    if effective_status(record).startswith("running"):
        logging.getLogger(__name__).warning(
            "%s is still training (status.json: running, pid %s on %s): its best.pt is the best epoch so far and "
            "may change", run_dir, record.get("pid"), record.get("host"))


def run_anchor_fit(run_dir: Path, cfg: Any) -> Any:
    """The run's stored volatility anchor fit (data.vol_anchor.AnchorFit) when its data config turns the
    anchor on, else None. A model trained on the anchor or the release features never runs without them."""
    model, data = cfg.get("model") or {}, cfg.data
    if model.get("vol_anchor") and not data.get("vol_anchor"):
        raise MigtError("data.vol_anchor: the model was trained with the volatility anchor (model.vol_anchor=true); "
                        "it cannot forecast without it (drop the data.vol_anchor override)")
    if int(model.get("n_event_features") or 0) and not data.get("event_calendar"):
        raise MigtError("data.event_calendar: the model was trained with the release features "
                        f"(model.n_event_features={model.get('n_event_features')}); it cannot forecast without them")
    if not data.get("vol_anchor"):
        return None
    from migt_train.volatility.anchor import read_anchor_fit

    return read_anchor_fit(run_dir)


def load_model(cfg: Any, ckpt: dict, ckpt_path: Path, n_features: int) -> Any:
    """The config's model with best.pt's weights (its feature and target scaling included), on the CPU."""
    import torch
    from hydra.utils import instantiate

    try:
        model = instantiate(cfg.model)
        model.load_state_dict(ckpt["model"])
    except Exception as e:
        raise MigtError(f"{ckpt_path}: model does not match config.yaml model section ({e})".replace("\n", " ")) from None
    input_mean = getattr(model, "input_mean", None)
    if isinstance(input_mean, torch.Tensor) and input_mean.shape[-1] != n_features:
        raise MigtError(f"data: {n_features} features but the checkpoint was trained on {input_mean.shape[-1]}")
    return model


def run_precision(cfg: Any, device: Any) -> Any:
    """The autocast validation ran under (the run's trainer settings), so later forecasts get the same
    numerics."""
    from migt_train.training.runtime import Precision
    from migt_train.training.config import TrainerConfig

    trainer = _merged(TrainerConfig, cfg.get("trainer"), "trainer")
    return Precision.for_device(device, trainer.mixed_precision, trainer.amp_dtype)


def cross_body(cfg: Any) -> bool | None:
    """True for a pooled run with the anchor trained when data.cross_asset also gave its body the other
    instruments' bars (before 2026-12-07 evening: model.n_variables counts them), so its forecasts get the inputs
    it was trained on; None (today's rule) otherwise."""
    from migt_train.data.features import FEATURE_NAMES

    data, model = cfg.data, cfg.get("model") or {}
    old = data.get("cross_asset") and data.get("vol_anchor") and int(model.get("n_variables") or 0) > len(FEATURE_NAMES)
    return True if old else None


def run_instruments(ckpt: dict) -> list[str] | None:
    """A pooled run's instrument names (its model's ids), None for a single-instrument run."""
    names = ckpt.get("instruments") or []
    return [str(n) for n in names] if len(names) > 1 else None


def only_instruments(data: Any, names: list[str]) -> Any:
    """The pooled market with test rows of `names` only (evaluation.instruments); one MigtError naming a name
    the data lacks."""
    import torch
    from dataclasses import replace

    from migt_train.data.pooled import instrument_bounds

    bounds = instrument_bounds(data) if data.instruments else {}
    unknown = [n for n in names if n not in bounds]
    if unknown or not names:
        raise MigtError(f"config key 'evaluation.instruments': {', '.join(unknown) or '[]'} not among the data's "
                        f"instruments ({', '.join(bounds) or 'one unnamed instrument'})")
    test = data.splits["test"]
    keep = torch.zeros(len(test), dtype=torch.bool)
    for n in names:
        lo, hi = bounds[n]
        keep |= (test >= lo) & (test < hi)
    return replace(data, splits={**data.splits, "test": test[keep]})


def evaluate_checkpoint(run_dir: str | Path, overrides: Sequence[str] = (),
                        out: str | Path | None = None) -> tuple[Path, dict[str, Any]]:
    """Library form of the CLI: returns (evaluation dir, metrics). `out`: the directory to write into (new or
    empty) instead of a fresh <run dir>/evaluations/<timestamp>/."""
    run_dir = Path(run_dir)
    cfg, ckpt, ckpt_path, levels = load_run_config(run_dir, overrides)

    from omegaconf import OmegaConf

    from migt_train.data import load_market
    from migt_train.evaluation.report import evaluate_run
    from migt_train.evaluation.settings import EvaluationConfig
    from migt_train.run.record import output_dir
    from migt_train.training.runtime import resolve_device
    from migt_train.utils.io import write_text

    ev = _merged(EvaluationConfig, cfg.get("evaluation"), "evaluation")
    device = resolve_device(ev.device, key="evaluation.device")
    precision = run_precision(cfg, device)
    with output_dir(run_dir, "evaluations", out) as out_dir:
        data = load_market(cfg.data, anchor_fit=run_anchor_fit(run_dir, cfg), instruments=run_instruments(ckpt),
                           trained=True, cross_body=cross_body(cfg))
        if ev.instruments is not None:
            data = only_instruments(data, list(ev.instruments))
        model = load_model(cfg, ckpt, ckpt_path, data.n_features).to(device)
        write_text(out_dir / "config.yaml", OmegaConf.to_yaml(cfg))
        write_text(out_dir / "overrides.txt", "".join(f"{a}\n" for a in overrides))
        metrics = evaluate_run(
            out_dir,
            model,
            data,
            levels,
            fit_summary=_fit_summary(run_dir, ckpt),
            history_path=run_dir / "history.json",
            batch_size=int(ev.batch_size),
            device=device,
            conformal=bool(ev.conformal),
            ewma_halflife=float(ev.ewma_halflife),
            precision=precision,
        )
    return out_dir, metrics
