"""Overrides of a recorded config (a run's config.yaml), as `python -m migt_train.evaluate <run> key=value`
takes them: Hydra's override grammar, existing keys only unless prefixed with '+'."""

from __future__ import annotations

from typing import Any, Sequence

from migt_train.errors import MigtError


def parse_overrides(args: Sequence[str]) -> list[Any]:
    """Hydra's override grammar (key=value, +key=value, ++key=value, ~key), parsed by Hydra's parser."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import OverrideParseException

    try:
        return OverridesParser.create().parse_overrides(list(args))
    except OverrideParseException as e:
        raise MigtError(f"override: expected key=value (e.g. data.path=bars.parquet): {one_line(e)}") from None


def one_line(e: Exception) -> str:
    return " ".join(str(e).split())


def has_key(cfg: Any, key: str) -> bool:
    """Whether the dotted key is in the config, whatever its value (a key set to null exists: OmegaConf.select
    answers its default for it, as for an absent key)."""
    from omegaconf import DictConfig, OmegaConf

    parent, _, leaf = key.rpartition(".")
    node = OmegaConf.select(cfg, parent, default=None, throw_on_missing=False) if parent else cfg
    return isinstance(node, DictConfig) and leaf in node


def apply_overrides(cfg: Any, overrides: list[Any]) -> Any:
    """Existing keys only, unless prefixed with '+' (Hydra's rule), so a typo cannot pass silently."""
    from omegaconf import OmegaConf

    for o in overrides:
        key = o.key_or_group
        exists = has_key(cfg, key)
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
            raise MigtError(f"override {o.input_line}: {one_line(e)}") from None
    return cfg
