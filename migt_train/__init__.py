"""migt-train: a Hydra experiment runner for the MIGT-TVDT quantile forecaster.

Importing the package registers the `${migt.*}` resolvers that conf/ uses (cheap: no torch), so
`hydra.compose` works from a notebook after `import migt_train`. `migt_train.load_run` is imported
lazily, so `import migt_train` stays light (no torch or pandas until a run is loaded).
"""

from migt_train.config.resolvers import register_resolvers

__version__ = "0.1.0"
__all__ = ["load_run"]

register_resolvers()


def __getattr__(name: str):
    if name == "load_run":
        from migt_train.run.loaded import load_run

        return load_run
    raise AttributeError(f"module 'migt_train' has no attribute {name!r}")
