"""Shared fixtures: one thread for bit-for-bit comparisons, the toy market and the toy model (toys.py)."""

from __future__ import annotations

import pytest
import torch

from toys import ToyQuantileModel, toy_market, toy_model


@pytest.fixture(autouse=True)
def one_thread():
    """Bit-for-bit comparisons between runs need the same reduction order: one thread."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture
def market():
    """The toy market as the training tests use it (480 bars, 4 features, 5 horizons)."""
    return toy_market()


@pytest.fixture
def model(market) -> ToyQuantileModel:
    """A toy model sized and scaled for `market`."""
    return toy_model(market)
