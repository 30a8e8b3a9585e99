"""Train and evaluate MIGT-TVDT: `python run.py [overrides]`, `python run.py -m hparams_search=optuna`,
`torchrun --nproc_per_node=N run.py [overrides]` (DDP: one process per device)."""

import os
import sys

import hydra
from omegaconf import DictConfig

import migt_train  # noqa: F401  (registers the ${migt.*} resolvers used by conf/)
from migt_train.run.runner import run

# Under torchrun only rank 0 leaves Hydra output: the other ranks keep no `.hydra/` copy, write no
# run.log and log warnings only (their own console). Same run dir for all: see share_run_id.
RANK_OVERRIDES = [
    "hydra.output_subdir=null",
    "hydra.job_logging.root.handlers=[console]",
    "hydra.job_logging.root.level=WARNING",
    "++hydra.job_logging.handlers.file.delay=true",
]


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig) -> float:
    return run(cfg)


if __name__ == "__main__":
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        from migt_train.training.runtime import finish_distributed, init_distributed, share_run_id

        env = init_distributed()  # before Hydra, which resolves hydra.run.dir from the run id
        share_run_id()
        if not env.is_main:
            sys.argv += RANK_OVERRIDES
        try:
            main()
        finally:
            finish_distributed()
    else:
        main()
