"""migt-train: a Hydra experiment runner for the MIGT-TVDT quantile forecaster.

Importing the package registers the `${migt.*}` resolvers that conf/ uses (cheap: no torch), so
`hydra.compose` works from a notebook after `import migt_train`. `migt_train.train(overrides)` runs a
whole run as `python run.py` does and returns its directory; `migt_train.load_run(path)` reads a finished
one back as a forecaster. Both are imported lazily, so `import migt_train` stays light (no torch or
pandas until one is called).
"""

import os

# torch's CPU threads are libgomp OpenMP threads, which by default spin for milliseconds at every
# barrier waiting for each other. On a CPU shared with other processes a spinning thread holds a core
# that the thread it waits for needs, and training slows several-fold (scripts/cpu_sharing.py); waiting
# passively yields the core at once. libgomp reads this when torch loads it, so it is set here, before
# any torch import; a user's own OMP_WAIT_POLICY or GOMP_SPINCOUNT wins.
if "OMP_WAIT_POLICY" not in os.environ and "GOMP_SPINCOUNT" not in os.environ:
    os.environ["OMP_WAIT_POLICY"] = "PASSIVE"

from migt_train.config.resolvers import register_resolvers  # noqa: E402

__version__ = "0.1.0"
__all__ = ["load_run", "train"]

register_resolvers()


def __getattr__(name: str):
    if name == "load_run":
        from migt_train.run.loaded import load_run

        return load_run
    if name == "train":
        from migt_train.run.launch import train

        return train
    raise AttributeError(f"module 'migt_train' has no attribute {name!r}")
