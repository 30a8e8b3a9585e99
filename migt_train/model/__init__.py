"""MIGT-TVDT quantile forecaster."""

from .migt_tvdt import MIGTTVDT

__all__ = ["MIGTTVDT"]
