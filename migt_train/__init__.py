"""migt-train: a Hydra experiment runner for the MIGT-TVDT quantile forecaster."""

__version__ = "0.1.0"
