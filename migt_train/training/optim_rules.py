"""Value rules for torch's optimizers (their classes cannot carry `config_errors`); which keys exist
is checked against the optimizer's own signature (migt_train.config.checks)."""

from __future__ import annotations

from typing import Any, Iterator, Mapping


def optimizer_config_errors(values: Mapping[str, Any]) -> Iterator[tuple[str, str, Any]]:
    if "lr" in values and not values["lr"] > 0:
        yield "lr", "must be positive", values["lr"]
    for key in ("weight_decay", "eps", "momentum", "dampening"):
        if values.get(key) is not None and values[key] < 0:
            yield key, "must be >= 0", values[key]
    betas = values.get("betas")
    if betas is not None and (not isinstance(betas, (list, tuple)) or len(betas) != 2
                              or any(isinstance(b, bool) or not isinstance(b, (int, float)) or not 0 <= b < 1 for b in betas)):
        yield "betas", "must be two numbers in [0, 1)", betas
