"""Optuna sweeps (`hparams_search=optuna`): sampler, storage, trial bookkeeping, search ranges.

The sweeper itself is a Hydra plugin (`hydra_plugins/migt_optuna_sweeper`): Hydra instantiates
sweepers only from the `hydra_plugins` namespace; it delegates to `migt_train.sweep.sweeper`.
Importing this package stays light (no optuna): the runner and the config resolvers use it.
"""

from __future__ import annotations

from typing import Any

__all__ = ["ResumableTPESampler"]


def __getattr__(name: str) -> Any:
    # conf/hparams_search/optuna.yaml names `migt_train.sweep.ResumableTPESampler`; optuna is only
    # imported when a sweep builds its sampler.
    if name == "ResumableTPESampler":
        from migt_train.sweep.sampler import ResumableTPESampler

        return ResumableTPESampler
    raise AttributeError(name)
