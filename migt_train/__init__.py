"""migt-train: a Hydra experiment runner for the MIGT-TVDT quantile forecaster."""

__version__ = "0.1.0"

__all__ = ["load_run"]


def __getattr__(name: str):
    # lazy: `import migt_train` stays light (no torch, hydra or pandas until a run is loaded)
    if name == "load_run":
        from migt_train.runs import load_run

        return load_run
    raise AttributeError(f"module 'migt_train' has no attribute {name!r}")
