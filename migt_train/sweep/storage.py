"""The study's storage: a URL string becomes an RDBStorage whose connections survive idle time."""

from __future__ import annotations

from typing import Any

from optuna.storages import RDBStorage
from sqlalchemy.engine.url import make_url


def display_url(url: str) -> str:
    """The URL with its password hidden, for logs."""
    return repr(make_url(url))  # SQLAlchemy's repr masks the password as ***


class PingedRDBStorage(RDBStorage):
    """RDBStorage with `pool_pre_ping` on: each pooled connection is tested before use."""

    def __init__(self, url: str) -> None:
        super().__init__(url, engine_kwargs={"pool_pre_ping": True})

    def __repr__(self) -> str:  # the optuna sweeper logs "Storage: <storage>"
        return display_url(self.url)


def open_storage(storage: Any) -> Any:
    """`hydra.sweeper.storage` as configured -> what `optuna.create_study(storage=...)` takes.

    The optuna sweeper hands a URL string straight to Optuna, which opens an engine without
    `pool_pre_ping`: a pooled PostgreSQL connection dropped by the server or a firewall while a
    long trial runs then fails the next `tell`. Every URL (SQLite too, where the ping costs
    nothing) is opened here with the ping on; None (in-memory) and storage objects pass through.
    """
    if isinstance(storage, str):
        return PingedRDBStorage(storage)
    return storage
