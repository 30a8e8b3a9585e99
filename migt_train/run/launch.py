"""`migt_train.train(overrides)`: a whole run from Python (a notebook), through the same code path as
`python run.py <overrides>`: Hydra composes conf/, the run guard checks hydra.run.dir, HydraConfig, the
run's logging and `.hydra/` are set up by Hydra's own run, and migt_train.run.runner.run trains and
evaluates. Errors are raised (MigtError, RunStopped) instead of ending the process."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from migt_train.errors import RAISE_ERRORS, MigtError


def train(overrides: Sequence[str] = (), config_dir: str | Path | None = None) -> Path:
    """Train and evaluate one run as `python run.py <overrides>` does; returns its run directory.

    overrides: Hydra overrides, as on the command line. config_dir: the conf/ directory to compose
    (default: this checkout's conf/). A bad override, a used run directory or a bad value raises a
    MigtError naming the culprit; a finished run's files are those of `python run.py`.

    Example (a notebook; the first call generates and caches the synthetic market)::

        import json, migt_train
        run_dir = migt_train.train(["experiment=smoke", "hydra.run.dir=outputs/runs/nb_smoke"])
        json.loads((run_dir / "metrics.json").read_text())["test"]["pinball_loss"]
        forecaster = migt_train.load_run(run_dir)
    """
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.errors import ConfigCompositionException, MissingConfigException, OverrideParseException

    from migt_train.config import resolvers
    from migt_train.config.compose import CONF_DIR
    from migt_train.run.guard import RunRefused
    from migt_train.run.runner import run

    conf = Path(config_dir or CONF_DIR).resolve()
    if not (conf / "config.yaml").is_file():
        raise MigtError(f"{conf}: no config.yaml there (config_dir must be a conf/ directory)")
    resolvers.new_run_id()  # a second call in the same process gets its own outputs/runs/<id>
    token = RAISE_ERRORS.set(True)
    try:
        # run.py's script name is its Hydra job name; GlobalHydra's Hydra.run is what @hydra.main calls
        with initialize_config_dir(config_dir=str(conf), version_base="1.3", job_name="run"):
            ret = GlobalHydra.instance().hydra.run(config_name="config", task_function=run,
                                                   overrides=list(overrides))
    except RunRefused as e:
        raise e.error from None
    except (ConfigCompositionException, MissingConfigException, OverrideParseException) as e:
        # a bad override or config group: Hydra's message, on one line
        raise MigtError(" ".join(str(e).split())) from None
    finally:
        RAISE_ERRORS.reset(token)
    return Path(ret.hydra_cfg.hydra.runtime.output_dir)
