"""Evaluation: metrics, baselines, prediction, conformal recalibration, plots, test evaluation.

Import the submodules directly (`from migt_train.evaluation.metrics import quantile_metrics`): the
per-epoch validation needs only the metrics, not matplotlib and pandas.
"""
