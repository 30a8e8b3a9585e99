"""Config groups with a `_target_` (model, optimizer, scheduler, loss, logger) are checked against
what they instantiate, so a new optimizer or model is one yaml file:

- every key must be a parameter of the target's signature (unless it takes **kwargs);
- a parameter whose default is a number takes a number, one whose default is a bool a bool;
- value rules come from the target itself: a `config_errors(values)` static method next to the class
  yields (key, rule, value) for each broken rule (values = the node over the signature's defaults); torch's optimizers get theirs from
  migt_train.training.optim_rules.
"""

from __future__ import annotations

import inspect
from typing import Any, Callable, Iterable, Mapping

from migt_train.errors import MigtError

HYDRA_KEYS = {"_target_", "_partial_", "_convert_", "_recursive_", "_args_"}
Rules = Callable[[Mapping[str, Any]], Iterable[tuple[str, str, Any]]]


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _fallback_rules(target: Any) -> Rules | None:
    import torch

    if inspect.isclass(target) and issubclass(target, torch.optim.Optimizer):
        from migt_train.training.optim_rules import optimizer_config_errors

        return optimizer_config_errors
    return None


def locate(node: Mapping[str, Any], key: str) -> Any:
    """The class or function `node._target_` names; MigtError naming the key when it cannot be imported."""
    from hydra.utils import get_object

    path = node.get("_target_")
    if not path:
        raise MigtError(f"config key '{key}._target_': missing")
    try:
        return get_object(str(path))
    except Exception as e:  # hydra wraps import errors in several types
        raise MigtError(f"config key '{key}._target_': cannot import {path!r} ({str(e).splitlines()[0]})") from None


def check_target(node: Mapping[str, Any], key: str) -> None:
    """Raise MigtError naming the first key of `node` (the group at `key`) its target rejects."""
    target = locate(node, key)
    params = inspect.signature(target).parameters
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    values = {k: v for k, v in node.items() if k not in HYDRA_KEYS}
    for k, v in values.items():
        p = params.get(k)
        if p is None:
            if takes_any:
                continue
            known = [n for n, q in params.items() if q.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD
                     or q.kind is inspect.Parameter.KEYWORD_ONLY]
            raise MigtError(f"config key '{key}.{k}': unknown option of {node['_target_']} (known: {', '.join(known)})")
        if isinstance(p.default, bool) and not isinstance(v, bool):
            raise MigtError(f"config key '{key}.{k}': must be true or false (got {v!r})")
        if _is_number(p.default) and not _is_number(v):
            raise MigtError(f"config key '{key}.{k}': must be a number (got {v!r})")
    rules = getattr(target, "config_errors", None) or _fallback_rules(target)
    defaults = {n: p.default for n, p in params.items() if p.default is not inspect.Parameter.empty}
    for k, rule, v in rules({**defaults, **values}) if rules else ():
        raise MigtError(f"config key '{key}.{k}': {rule} (got {v!r})")
