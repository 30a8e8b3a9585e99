import numpy as np
import pandas as pd
import pytest

from migt_train.data import FEATURE_NAMES
from migt_train.data.features import compute_features, warmup_rows
from migt_train.errors import MigtError

from data_helpers import small_bars


@pytest.fixture(scope="module")
def bars() -> pd.DataFrame:
    return small_bars(n_days=3, seed=5)


def test_names():
    assert len(FEATURE_NAMES) == 24 == len(set(FEATURE_NAMES))
    assert FEATURE_NAMES[:5] == ["open", "high", "low", "close", "log_return"]
    assert {"garman_klass", "rv_12", "rv_36", "rv_72", "amihud", "rsi_14", "macd", "atr_14"} <= set(FEATURE_NAMES)


def test_causal(bars):
    base = compute_features(bars)
    rng = np.random.default_rng(0)
    for t in (80, 300, 600):
        changed = bars.copy()
        after = changed.index > t
        k = after.sum()
        scale = np.exp(rng.normal(0, 0.01, k))
        for col in ("open", "high", "low", "close"):
            changed.loc[after, col] *= scale
        changed.loc[after, "volume"] = rng.integers(1, 10_000, k)
        feats = compute_features(changed)
        np.testing.assert_array_equal(feats[: t + 1], base[: t + 1])
        assert not np.allclose(feats[t + 1 :], base[t + 1 :], equal_nan=True)


def test_warmup_not_filled(bars):
    feats = compute_features(bars)
    first = warmup_rows(feats)
    assert first == 72  # rv_72 needs 72 one-bar returns
    assert np.isnan(feats[:first, FEATURE_NAMES.index("rv_72")]).all()
    assert np.isfinite(feats[first:]).all()


def test_values(bars):
    feats = compute_features(bars)
    c = bars["close"].to_numpy()
    r = np.diff(np.log(c))
    t = 500
    col = {n: feats[:, i] for i, n in enumerate(FEATURE_NAMES)}
    np.testing.assert_allclose(col["log_return"][t], r[t - 1])
    np.testing.assert_allclose(col["rv_12"][t], np.sqrt(np.sum(r[t - 12 : t] ** 2)), rtol=1e-9)
    np.testing.assert_allclose(col["rv_72"][t], np.sqrt(np.sum(r[t - 72 : t] ** 2)), rtol=1e-9)
    np.testing.assert_allclose(col["roc_10"][t], c[t] / c[t - 10] - 1)
    np.testing.assert_allclose(col["log_volume"][t], np.log1p(bars["volume"].to_numpy()[t]))
    assert ((col["rsi_14"][72:] >= 0) & (col["rsi_14"][72:] <= 100)).all()
    assert (col["garman_klass"][72:] >= 0).all() and (col["atr_14"][72:] > 0).all()


def test_flat_prices_stay_finite():
    n = 200
    flat = pd.DataFrame({k: np.full(n, 100.0) for k in ("open", "high", "low", "close")})
    flat["volume"] = 0.0
    feats = compute_features(flat)
    first = warmup_rows(feats)
    assert np.isfinite(feats[first:]).all()
    assert (feats[first:, FEATURE_NAMES.index("rsi_14")] == 50).all()


def test_nonfinite_after_warmup_is_an_error(bars):
    feats = compute_features(bars)
    feats[300, 6] = np.inf
    with pytest.raises(MigtError, match=r"rv_12 are not finite after warm-up \(1 rows\)"):
        warmup_rows(feats, "x.csv")
