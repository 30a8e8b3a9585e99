"""Resume rules: a resumed run takes its own recorded config; the command line may change only what
does not change what was trained.

`plan_resume` compares the run's recorded `config.yaml` with the config this command composed.
A key that differs and that no override of this command touched takes the recorded value (the
original overrides need not be repeated). A key the command changed is allowed only when it is in
ALLOWED (how long to train, where, how to log and report); anything else (data, model, quantile
levels, optimizer, scheduler, loss, seed, ...) is refused, all keys named in one message.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import yaml

from migt_train.errors import MigtError

# dotted keys (or prefixes) a resume may change
ALLOWED = (
    "trainer.max_epochs",
    "trainer.early_stopping_patience",
    "trainer.early_stopping_min_delta",
    "trainer.device",
    "trainer.progress",
    "trainer.log_every_n_steps",
    "trainer.eval_batch_size",
    "trainer.resume",
    "logger",
    "evaluation.batch_size",
    "evaluation.device",
    "tag",
    "output_root",
)

# keys added since runs were first recorded, with the value a run recorded before them trained with: its resume
# takes that value, not today's default (which would change what it trains)
ADDED_KEYS = {"trainer.instrument_decay": 0.0}


def flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    """{"a.b": leaf}; lists and empty dicts are leaves."""
    if isinstance(tree, dict) and tree:
        out: dict[str, Any] = {}
        for k, v in tree.items():
            out.update(flatten(v, f"{prefix}{k}."))
        return out
    return {prefix[:-1]: tree}


def _under(key: str, prefix: str) -> bool:
    return key == prefix or key.startswith(prefix + ".")


def allowed(key: str) -> bool:
    return any(_under(key, a) for a in ALLOWED)


def override_keys(overrides: Iterable[str]) -> list[str]:
    """The config key (or group) each command-line override sets."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parsed = OverridesParser.create().parse_overrides(list(overrides))
    return [o.key_or_group for o in parsed]


@dataclass
class ResumePlan:
    take_recorded: dict[str, Any] = field(default_factory=dict)  # key -> recorded value
    changed: dict[str, tuple[Any, Any]] = field(default_factory=dict)  # allowed: key -> (recorded, new)


def _short(v: Any) -> str:
    text = json.dumps(v, default=str)
    return text if len(text) <= 40 else text[:37] + "..."


def plan_resume(run_dir: Path, recorded: dict, new: dict, overrides: Iterable[str]) -> ResumePlan:
    rec, cur = flatten(recorded), flatten(new)
    differ = sorted(k for k in rec.keys() | cur.keys() if rec.get(k, KeyError) != cur.get(k, KeyError))
    touched: set[str] = set()
    for key in override_keys(overrides):
        keys = [k for k in differ if _under(k, key)]
        if not any(_under(k, key) for k in rec.keys() | cur.keys()):
            keys = differ  # a group with a global package (experiment=...): it may have set anything
        touched.update(keys)
    refused = [k for k in differ if k in touched and not allowed(k)]
    if refused:
        shown = ", ".join(f"{k} ({_short(rec.get(k))} -> {_short(cur.get(k))})" for k in refused[:8])
        more = f" and {len(refused) - 8} more" if len(refused) > 8 else ""
        raise MigtError(
            f"{run_dir}: a resume cannot change what was trained: {shown}{more}. Resume with the run's "
            "own config (leave these overrides out; it is taken from config.yaml) or start a new run. "
            f"A resume may change only: {', '.join(ALLOWED)}"
        )
    unknown = [k for k in differ if k not in touched and k not in cur]
    if unknown:
        raise MigtError(f"{run_dir}/config.yaml: keys unknown to this version: {', '.join(unknown)}; "
                        "resume it with the version that wrote it")
    plan = ResumePlan()
    for k in differ:
        if k in touched:
            plan.changed[k] = (rec.get(k), cur.get(k))
        elif k in rec:
            plan.take_recorded[k] = rec[k]
        elif k in ADDED_KEYS:
            plan.take_recorded[k] = ADDED_KEYS[k]
    return plan


def check_checkpoint_agrees(run_dir: Path, recorded: dict) -> None:
    """last.pt records the config it was trained with: a config.yaml that says otherwise (rewritten by
    hand, or by an earlier version's resume) cannot be the run's record."""
    from migt_train.training.checkpoint import load_checkpoint

    last = run_dir / "checkpoints" / "last.pt"
    trained = load_checkpoint(last).get("config")
    if not isinstance(trained, dict):
        return
    rec, ckpt = flatten(recorded), flatten(trained)
    differ = sorted(k for k in rec.keys() & ckpt.keys() if rec[k] != ckpt[k] and not allowed(k))
    if differ:
        shown = ", ".join(f"{k} ({_short(ckpt[k])} in last.pt, {_short(rec[k])} in config.yaml)" for k in differ[:8])
        raise MigtError(f"{run_dir}/config.yaml does not match what {last} was trained with: {shown}; "
                        "restore config.yaml or start a new run")


def load_recorded(run_dir: Path) -> dict | None:
    path = run_dir / "config.yaml"
    if not path.is_file():
        return None
    try:
        recorded = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as e:
        raise MigtError(f"{path}: unreadable recorded config ({e})") from None
    if not isinstance(recorded, dict):
        raise MigtError(f"{path}: not a config mapping")
    return recorded


def _load_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def check_not_finished(run_dir: Path, status: str, trainer_cfg: dict) -> None:
    """A completed run that the effective config would not train further: say so and how to extend."""
    if status != "completed":
        return
    metrics = _load_json(run_dir / "metrics.json")
    history = _load_json(run_dir / "history.json").get("epochs", [])
    epochs = int(metrics.get("epochs_run", sum(1 for e in history if e.get("epoch", 1) >= 1)))  # epoch 0: untrained
    max_epochs = int(trainer_cfg["max_epochs"])
    patience = int(trainer_cfg["early_stopping_patience"])
    best_epoch = int(metrics.get("best_epoch", epochs))
    early = bool(metrics.get("stopped_early"))
    would_stop_early = early and patience > 0 and epochs - best_epoch >= patience
    if max_epochs > epochs and not would_stop_early:
        return
    how = f"trainer.max_epochs=N with N > {epochs}"
    if early:
        how += (f" and trainer.early_stopping_patience above {epochs - best_epoch} (0 = never stop); "
                f"it stopped early at epoch {epochs}, best epoch {best_epoch}")
    raise MigtError(
        f"{run_dir}: this run is finished ({epochs} of {max_epochs} epochs, status completed; results in "
        f"metrics.json). To train it further, resume with {how}"
    )
