"""`python -m migt_train.evaluate <run dir> [key=value ...]`: re-evaluate a run's best checkpoint.

Reads <run dir>/config.yaml and checkpoints/best.pt, applies dotted overrides to the config (e.g.
`data.path=other.parquet data.source=ohlcv evaluation.conformal=true`), and writes metrics.json,
predictions.parquet, plots/ and the config used into a fresh <run dir>/evaluations/<timestamp>/,
leaving the run's own files untouched.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Any, Sequence

from migt_train.errors import MigtError

USAGE = "usage: python -m migt_train.evaluate <run dir> [key=value ...]"


def _parse_overrides(args: Sequence[str]) -> list[Any]:
    """Hydra's override grammar (key=value, +key=value, ++key=value, ~key), parsed by Hydra's parser."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import OverrideParseException

    try:
        return OverridesParser.create().parse_overrides(list(args))
    except OverrideParseException as e:
        raise MigtError(f"override: expected key=value (e.g. data.path=bars.parquet): {_one_line(e)}") from None


def _one_line(e: Exception) -> str:
    return " ".join(str(e).split())


def _has_key(cfg: Any, key: str) -> bool:
    """Whether the dotted key is in the config, whatever its value (a key set to null exists: OmegaConf.select
    answers its default for it, as for an absent key)."""
    from omegaconf import DictConfig, OmegaConf

    parent, _, leaf = key.rpartition(".")
    node = OmegaConf.select(cfg, parent, default=None, throw_on_missing=False) if parent else cfg
    return isinstance(node, DictConfig) and leaf in node


def _apply_overrides(cfg: Any, overrides: list[Any]) -> Any:
    """Existing keys only, unless prefixed with '+' (Hydra's rule), so a typo cannot pass silently."""
    from omegaconf import OmegaConf

    for o in overrides:
        key = o.key_or_group
        exists = _has_key(cfg, key)
        if not exists and not (o.is_add() or o.is_force_add()):
            raise MigtError(f"override {key}: no such key in config.yaml (prefix it with + to add it)")
        if exists and o.is_add():
            raise MigtError(f"override +{key}: the key exists already (drop the +, or use ++ to force)")
        try:
            if o.is_delete():
                parent, _, leaf = key.rpartition(".")
                node = OmegaConf.select(cfg, parent) if parent else cfg
                node.pop(leaf)
            else:
                OmegaConf.update(cfg, key, o.value(), merge=True, force_add=True)
        except Exception as e:  # omegaconf raises several unrelated types for bad values
            raise MigtError(f"override {o.input_line}: {_one_line(e)}") from None
    return cfg


def _merged(schema: type, node: Any, key: str) -> Any:
    """The run's `key` section over the schema's defaults (older runs may lack keys); typed, by key."""
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    try:
        return OmegaConf.merge(OmegaConf.structured(schema), node or {})
    except OmegaConfBaseException as e:
        raise MigtError(f"config key '{key}.{e.full_key}': {_one_line(e)}") from None


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


def load_run_config(run_dir: Path, overrides: Sequence[str] = ()) -> tuple[Any, dict, Path, list[float]]:
    """A run directory -> (its config with the overrides applied and resolved, best.pt's contents, best.pt's
    path, quantile levels). Shared by the evaluate and predict CLIs and `load_run`."""
    run_dir = Path(run_dir)
    parsed = _parse_overrides(overrides)
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
    own_source = (cfg.data.get("source"), cfg.data.get("path"))
    cfg = _apply_overrides(cfg, parsed)
    try:
        OmegaConf.resolve(cfg)
    except Exception as e:
        raise MigtError(f"{cfg_path}: {e}".replace("\n", " ")) from None
    # another file than the run's own: score all of it (after warm-up), unless a split was asked for
    asked_split = any(o.key_or_group.startswith("data.split") for o in parsed)
    if (cfg.data.get("source"), cfg.data.get("path")) != own_source and not asked_split:
        OmegaConf.update(cfg, "data.split.by", "all", force_add=True)
    return cfg, ckpt, ckpt_path, _levels(cfg)


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
    from migt_train.data.vol_anchor import read_anchor_fit

    return read_anchor_fit(run_dir)


def run_blend(run_dir: Path, cfg: Any) -> Any:
    """The run's stored seasonal blend (evaluation.seasonal_blend.SeasonalBlend) when its config turns it on,
    else None (an override evaluation.seasonal_blend=false scores the model alone)."""
    if not (cfg.get("evaluation") or {}).get("seasonal_blend"):
        return None
    from migt_train.evaluation.seasonal_blend import read_blend

    return read_blend(run_dir)


def run_grid(run_dir: Path, cfg: Any) -> Any:
    """The run's stored price grid (evaluation.price_grid.PriceGrid) when its config sets evaluation.price_tick,
    else None (an override evaluation.price_tick=null scores the forecast off the grid)."""
    if (cfg.get("evaluation") or {}).get("price_tick") is None:
        return None
    from migt_train.evaluation.price_grid import read_grid

    return read_grid(run_dir)


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
    from migt_train.runtime import Precision
    from migt_train.training.config import TrainerConfig

    trainer = _merged(TrainerConfig, cfg.get("trainer"), "trainer")
    return Precision.for_device(device, trainer.mixed_precision, trainer.amp_dtype)


def evaluate_checkpoint(run_dir: str | Path, overrides: Sequence[str] = ()) -> tuple[Path, dict[str, Any]]:
    """Library form of the CLI: returns (evaluation dir, metrics)."""
    run_dir = Path(run_dir)
    cfg, ckpt, ckpt_path, levels = load_run_config(run_dir, overrides)

    from omegaconf import OmegaConf

    from migt_train.data import load_market
    from migt_train.evaluation.report import evaluate_run
    from migt_train.evaluation.settings import EvaluationConfig
    from migt_train.io import write_text
    from migt_train.runtime import resolve_device

    ev = _merged(EvaluationConfig, cfg.get("evaluation"), "evaluation")
    device = resolve_device(ev.device, key="evaluation.device")
    precision = run_precision(cfg, device)
    data = load_market(cfg.data, anchor_fit=run_anchor_fit(run_dir, cfg))
    blend = run_blend(run_dir, cfg)
    grid = run_grid(run_dir, cfg)
    model = load_model(cfg, ckpt, ckpt_path, data.n_features).to(device)

    from migt_train.run_dir import fresh_subdir

    out_dir = fresh_subdir(run_dir, "evaluations")
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
        blend=blend,
        grid=grid,
        ewma_halflife=float(ev.ewma_halflife),
        precision=precision,
    )
    return out_dir, metrics


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print(USAGE, file=sys.stdout if args else sys.stderr)
        return 0 if args else 2
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        out_dir, m = evaluate_checkpoint(args[0], args[1:])
    except MigtError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    skill = m.get("skill_vs_climatology")
    line = f"test pinball {m['test']['pinball_loss']:.6g}, calibration error {m['test']['calibration_error']:.4f}"
    if m.get("calibration_noise") is not None:
        line += f" (p = {m['calibration_noise']['p_value']:.3f} against exact calibration)"
    if skill is not None:
        line += f", skill vs climatology {skill:+.2%}"
    if m.get("oracle_gap_closed") is not None:
        line += f", oracle gap closed {m['oracle_gap_closed']:.2%}"
    c = m.get("comparison")
    if c is not None and m.get("skill_vs_best_baseline") is not None:
        line += (f"\nvs best baseline {c['baseline']}: skill {m['skill_vs_best_baseline']:+.2%}, "
                 f"loss difference {c['loss_difference']:.4g} (95% CI {c['ci95'][0]:.4g} to {c['ci95'][1]:.4g})")
    print(f"{out_dir / 'metrics.json'}\n{line}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
