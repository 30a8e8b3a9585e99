"""Hydra sweeper plugin `hparams_search=optuna` selects: the optuna sweeper with migt_train's
bookkeeping (migt_train/sweep/sweeper.py). Hydra instantiates sweepers only from the
`hydra_plugins` namespace, hence this thin class here.
"""

import sys
from typing import Any

from hydra_plugins.hydra_optuna_sweeper.optuna_sweeper import OptunaSweeper

from migt_train.errors import MigtError


class MigtOptunaSweeper(OptunaSweeper):
    def __init__(self, sampler: Any, direction: Any, storage: Any, study_name: Any, n_trials: int,
                 n_jobs: int, max_failure_rate: float, search_space: Any, custom_search_space: Any,
                 params: Any) -> None:
        from migt_train.sweep.sweeper import MigtOptunaSweeperImpl  # optuna only once sweeping

        try:
            self.sweeper = MigtOptunaSweeperImpl(
                sampler, direction, storage, study_name, n_trials, n_jobs, max_failure_rate,
                search_space, custom_search_space, params,
            )
        except MigtError as e:
            # Hydra would wrap it as "Error in call to target ..." over several lines; the sweep has not
            # started, so the process ends here as the runner ends on a bad input: one line, exit 2
            print(f"error: {e}", file=sys.stderr)
            sys.exit(2)
