"""migt-train: a Hydra experiment runner for the MIGT-TVDT quantile forecaster.

Importing the package registers the `${migt.*}` resolvers that conf/ uses (cheap: no torch), so
`hydra.compose` works from a notebook after `import migt_train`.
"""

from migt_train.resolvers import register_resolvers

__version__ = "0.1.0"

register_resolvers()
