"""The synthetic NQ-like market: a seeded generator (generator.py) and its oracle (oracle.py)."""

from migt_train.data.synthetic.generator import STATE_COLUMNS, SyntheticConfig, config_key, generate
from migt_train.data.synthetic.oracle import SyntheticOracle

__all__ = ["STATE_COLUMNS", "SyntheticConfig", "SyntheticOracle", "config_key", "generate"]
