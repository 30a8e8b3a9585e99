"""The evaluation tests' helpers: the toy market preset they use (with purged splits and its oracle),
the toy model sized for it, and a training history."""

from __future__ import annotations

from migt_train.data.market import MarketData
from toys import LEVELS, ToyQuantileModel, toy_market, toy_model

__all__ = ["LEVELS", "ToyQuantileModel", "make_history", "make_market", "make_model"]


def make_market(n: int = 900, seed: int = 0) -> MarketData:
    """3 features, horizons of 1/3/6 bars, 16-bar windows, purged splits as load_market makes them."""
    return toy_market(n=n, horizons=[1, 3, 6], seq_len=16, n_noise=1, purge=True, session_bars=None, seed=seed)


def make_model(data: MarketData, seed: int = 0) -> ToyQuantileModel:
    """dropout 0.5, so a forecast made in train mode would be visibly random."""
    return toy_model(data, seed, hidden=8, dropout=0.5)


def make_history(n_epochs: int = 6) -> dict:
    return {
        "epochs": [
            {"epoch": e, "global_step": 10 * e, "lr": 1e-4 * min(1.0, (e + 1) / 3) * (0.5 ** max(0, e - 2)),
             "train_loss": 0.5 / (e + 1) + 0.3, "val_loss": 0.45 / (e + 1) + 0.32 + 0.01 * max(0, e - 3)}
            for e in range(n_epochs)
        ]
    }
