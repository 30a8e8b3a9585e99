"""Optuna pieces for `hparams_search=optuna`."""

from __future__ import annotations

from typing import Any

import numpy as np
from optuna.samplers import RandomSampler, TPESampler


class ResumableTPESampler(TPESampler):
    """TPE whose random state is derived from (seed, trials already in the study).

    A plain seeded sampler restarted on a stored study re-proposes the first launch's start-up
    trials; reseeding on the first trial of each launch continues the search instead, and stays
    reproducible for a given study history.
    """

    def __init__(self, seed: int | None = None, **kwargs: Any) -> None:
        super().__init__(seed=seed, **kwargs)
        self._base_seed = seed
        self._reseeded = False

    def infer_relative_search_space(self, study, trial):  # type: ignore[no-untyped-def]
        if not self._reseeded:
            self._reseeded = True
            if self._base_seed is not None:
                seed = (self._base_seed + 7919 * len(study.get_trials(deepcopy=False))) % 2**32
                self._rng = np.random.RandomState(seed)
                self._random_sampler = RandomSampler(seed=seed)
        return super().infer_relative_search_space(study, trial)
