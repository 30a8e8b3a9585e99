"""The 24 causal bar features (SPEC 2.3): the value at bar t uses bars <= t only.

Every rolling / exponential statistic is a pandas rolling or adjust=False ewm with min_periods, so the
first rows lack full history and come out NaN; `warmup_rows` counts them and the caller drops them.
Windows count bars, so they run across session breaks and weekends like a chart of the contract would.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from migt_train.errors import MigtError

FEATURE_VERSION = 1
FEATURE_NAMES: list[str] = [
    # price
    "open", "high", "low", "close", "log_return",
    # volatility
    "garman_klass", "rv_12", "rv_36", "rv_72",
    # liquidity
    "amihud",
    # momentum
    "rsi_14", "macd", "roc_5", "roc_10", "roc_20",
    # trend
    "ema_slope_9", "ema_dev_9", "ema_slope_21", "ema_dev_21", "ema_slope_50", "ema_dev_50",
    # range
    "atr_14",
    # volume
    "log_volume", "volume_ratio",
]  # fmt: skip
# leading rows without full history: rv_72 needs 72 returns, and the first bar has none
FEATURE_WARMUP = 72
AMIHUD_WINDOW = 12
VOLUME_MA_WINDOW = 20


def _ema(x: pd.Series, span: int) -> pd.Series:
    return x.ewm(span=span, adjust=False, min_periods=span).mean()


def _wilder(x: pd.Series, n: int) -> pd.Series:
    return x.ewm(alpha=1.0 / n, adjust=False, min_periods=n).mean()


def compute_features(bars: pd.DataFrame) -> np.ndarray:
    """bars with open, high, low, close, volume (N rows) -> (N, 24) float64 in FEATURE_NAMES order."""
    o, h, l, c, v = (pd.Series(bars[k].to_numpy(np.float64)) for k in ("open", "high", "low", "close", "volume"))
    r = np.log(c).diff()
    r2 = r * r
    out: dict[str, pd.Series] = {"open": o, "high": h, "low": l, "close": c, "log_return": r}

    gk = 0.5 * np.log(h / l) ** 2 - (2 * np.log(2) - 1) * np.log(c / o) ** 2
    out["garman_klass"] = np.sqrt(gk.clip(lower=0.0))
    for n in (12, 36, 72):
        # rolling sums subtract old terms: clip the rounding residue below zero
        out[f"rv_{n}"] = np.sqrt(r2.rolling(n, min_periods=n).sum().clip(lower=0.0))

    # |return| in basis points per $1M traded; a zero-volume bar counts as one contract
    dollar_volume = c * v.clip(lower=1.0)
    out["amihud"] = (r.abs() * 1e10 / dollar_volume).rolling(AMIHUD_WINDOW, min_periods=AMIHUD_WINDOW).mean()

    dc = c.diff()
    gain, loss = _wilder(dc.clip(lower=0.0), 14), _wilder((-dc).clip(lower=0.0), 14)
    total = gain + loss
    # a flat stretch has no gains and no losses: neutral 50 rather than 0/0
    out["rsi_14"] = (100.0 * gain / total.where(total > 0)).mask(total == 0, 50.0)
    out["macd"] = _ema(c, 12) - _ema(c, 26)
    for n in (5, 10, 20):
        out[f"roc_{n}"] = c / c.shift(n) - 1.0
    for span in (9, 21, 50):
        ema = _ema(c, span)
        out[f"ema_slope_{span}"] = ema / ema.shift(1) - 1.0
        out[f"ema_dev_{span}"] = c / ema - 1.0

    prev_c = c.shift(1)
    true_range = pd.concat([h - l, (h - prev_c).abs(), (l - prev_c).abs()], axis=1).max(axis=1, skipna=False)
    out["atr_14"] = _wilder(true_range, 14)

    out["log_volume"] = np.log1p(v)
    out["volume_ratio"] = (v + 1.0) / (v.rolling(VOLUME_MA_WINDOW, min_periods=VOLUME_MA_WINDOW).mean() + 1.0)
    return np.column_stack([out[k].to_numpy(np.float64) for k in FEATURE_NAMES])


def warmup_rows(features: np.ndarray, source: str = "data") -> int:
    """Leading rows without full history. Any non-finite value after them is a data problem."""
    finite = np.isfinite(features).all(axis=1)
    if not finite.any():
        raise MigtError(
            f"{source}: too few bars ({len(features)} rows): the feature warm-up needs at least {FEATURE_WARMUP + 1}"
        )
    first = int(np.argmax(finite))
    bad = ~finite[first:]
    if bad.any():
        cols = [FEATURE_NAMES[j] for j in np.flatnonzero(~np.isfinite(features[first:][bad]).all(axis=0))]
        raise MigtError(f"{source}: features {', '.join(cols)} are not finite after warm-up ({int(bad.sum())} rows)")
    return first
