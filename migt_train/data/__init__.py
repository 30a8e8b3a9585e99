"""Market data: OHLCV files or the synthetic NQ market -> features, targets, windows, splits."""

from migt_train.data.assemble import load_market
from migt_train.data.build import synthetic_config
from migt_train.data.features import FEATURE_NAMES
from migt_train.data.market import MarketData
from migt_train.data.synthetic import SyntheticConfig

__all__ = ["FEATURE_NAMES", "MarketData", "SyntheticConfig", "load_market", "synthetic_config"]
