"""Train and evaluate MIGT-TVDT: `python run.py [overrides]`, `python run.py -m hparams_search=optuna`."""

import hydra
from omegaconf import DictConfig

import migt_train  # noqa: F401  (registers the ${migt.*} resolvers used by conf/)
from migt_train.runner import run


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig) -> float:
    return run(cfg)


if __name__ == "__main__":
    main()
