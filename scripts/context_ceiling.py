"""How much of the oracle's forecast the heads' inputs can explain on a synthetic market: a least-squares ceiling.

    python scripts/context_ceiling.py [--lags FIRST LAST] [key=value ...]    e.g. experiment=learnability

Target: per row and horizon, log of the oracle's interquartile range over the volatility anchor's sigma_h (how
far the true spread is from the anchor). Regressors: what the anchored heads see, linearly (the context of
volatility/realized.py, log sigma_h of every horizon, the release features), fitted by least squares on every
5th training row; printed: R^2 per horizon on the test rows. --lags adds each bar's log volume (less its mean at
that bar of day over the training bars) at bar lags FIRST..LAST as further regressors: what finer-grained volume
would add. A diagnosis of the inputs, not of a trained model; it reads the test split.
"""

from __future__ import annotations

import argparse

import numpy as np

from migt_train.config.compose import compose_config
from migt_train.data import load_market


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lags", nargs=2, type=int, metavar=("FIRST", "LAST"))
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args()
    data = load_market(compose_config(args.overrides).data)
    if data.oracle is None or not data.realized.shape[1]:
        raise SystemExit("needs a synthetic market (its oracle) and data.vol_anchor=true (the heads' context)")
    train, test = data.splits["train"].numpy()[::5], data.splits["test"].numpy()
    sigma = data.vol_anchor.numpy()

    def target(rows: np.ndarray) -> np.ndarray:
        q = data.oracle.quantiles(rows, [0.25, 0.75])
        return np.log((q[..., 1] - q[..., 0]) / sigma[rows])

    lagged = None
    if args.lags:
        log_volume = data.features[:, data.feature_names.index("log_volume")].numpy().astype(np.float64)
        bar = data.bar_in_day.numpy()
        seen = slice(0, int(data.splits["train"][-1]) + 1)
        mean = np.bincount(bar[seen], log_volume[seen], data.bars_per_day) / np.maximum(
            np.bincount(bar[seen], minlength=data.bars_per_day), 1)
        lagged = log_volume - mean[bar]

    def design(rows: np.ndarray) -> np.ndarray:
        parts = [np.ones((len(rows), 1)), data.realized[rows].numpy(), np.log(sigma[rows]),
                 data.events[rows].numpy().reshape(len(rows), -1)]
        if lagged is not None:
            parts.append(np.column_stack([lagged[np.maximum(rows - k, 0)] for k in range(args.lags[0], args.lags[1] + 1)]))
        return np.column_stack(parts)

    y_train, y_test = target(train), target(test)
    weights, *_ = np.linalg.lstsq(design(train), y_train, rcond=None)
    residual = y_test - design(test) @ weights
    r2 = 1.0 - residual.var(0) / y_test.var(0)
    print("test R^2 per horizon:", "  ".join(f"{h} {v:.3f}" for h, v in zip(data.horizon_names, r2)))


if __name__ == "__main__":
    main()
