"""TPE that continues a stored study instead of repeating it, and differs between workers."""

from __future__ import annotations

from typing import Any

import numpy as np
from optuna.samplers import RandomSampler, TPESampler


class ResumableTPESampler(TPESampler):
    """TPE whose random state is derived from (seed, number of this launch's first trial).

    A plain seeded sampler restarted on a stored study re-proposes the first launch's start-up
    trials, and two workers started together on one shared study would propose the same points.
    Reseeding on the first trial of each launch from that trial's number — unique in the study —
    continues the search, keeps workers apart, and stays reproducible for a given study history
    (for launches one after another the number equals the count of trials already stored).
    """

    def __init__(self, seed: int | None = None, **kwargs: Any) -> None:
        super().__init__(seed=seed, **kwargs)
        self._base_seed = seed
        self._reseeded = False

    def infer_relative_search_space(self, study, trial):  # type: ignore[no-untyped-def]
        if not self._reseeded:
            self._reseeded = True
            if self._base_seed is not None:
                seed = (self._base_seed + 7919 * (trial.number + 1)) % 2**32
                self._rng = np.random.RandomState(seed)
                self._random_sampler = RandomSampler(seed=seed)
        return super().infer_relative_search_space(study, trial)
