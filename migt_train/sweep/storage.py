"""The study's storage: a URL string becomes an RDBStorage whose connections survive idle time."""

from __future__ import annotations

import contextlib
from typing import Any, Iterator

import sqlalchemy
from optuna.storages import RDBStorage
from sqlalchemy.engine.url import make_url
from sqlalchemy.pool import NullPool

# pg_advisory_lock key held while a worker creates Optuna's tables (any fixed 64-bit number)
SCHEMA_LOCK_KEY = 0x6D696774  # "migt"


def display_url(url: str) -> str:
    """The URL with its password hidden, for logs."""
    return repr(make_url(url))  # SQLAlchemy's repr masks the password as ***


class PingedRDBStorage(RDBStorage):
    """RDBStorage with `pool_pre_ping` on: each pooled connection is tested before use."""

    def __init__(self, url: str) -> None:
        with _schema_lock(url):
            super().__init__(url, engine_kwargs={"pool_pre_ping": True})

    def __repr__(self) -> str:  # the optuna sweeper logs "Storage: <storage>"
        return display_url(self.url)


@contextlib.contextmanager
def _schema_lock(url: str) -> Iterator[None]:
    """Serialise Optuna's table creation between workers started together on an empty database.

    RDBStorage runs CREATE TABLE/TYPE on first use; two PostgreSQL workers doing so at once fail
    with a unique violation in pg_type. A session-level advisory lock makes the second wait and
    then find the tables. Other databases go through unchanged.
    """
    if make_url(url).get_backend_name() != "postgresql":
        yield
        return
    engine = sqlalchemy.create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as connection:
            connection.execute(sqlalchemy.text("SELECT pg_advisory_lock(:key)"), {"key": SCHEMA_LOCK_KEY})
            try:
                yield
            finally:
                connection.execute(sqlalchemy.text("SELECT pg_advisory_unlock(:key)"), {"key": SCHEMA_LOCK_KEY})
    finally:
        engine.dispose()


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
