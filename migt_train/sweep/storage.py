"""The study's storage: `hydra.sweeper.storage` (a URL string) becomes an RDBStorage whose connections survive
idle time, that gives up on a host that does not answer, and whose every failure is one MigtError naming the
key and where it points (password hidden)."""

from __future__ import annotations

import contextlib
import logging
import select
import time
from typing import Any, Iterator

import sqlalchemy
from optuna.storages import RDBStorage
from sqlalchemy.engine.url import URL, make_url
from sqlalchemy.pool import NullPool

from migt_train.errors import MigtError

log = logging.getLogger(__name__)

KEY = "hydra.sweeper.storage"
# pg_advisory_lock key held while a worker creates Optuna's tables (any fixed 64-bit number)
SCHEMA_LOCK_KEY = 0x6D696774  # "migt"
# seconds a PostgreSQL host may take to answer a new connection (libpq's connect_timeout; a URL's own
# ?connect_timeout= wins)
CONNECT_TIMEOUT_S = 10
# TCP keepalives on every connection: a host that vanishes mid-sweep (power, network) fails the next query
# after about idle + interval * count seconds instead of never
KEEPALIVES = {"keepalives": 1, "keepalives_idle": 30, "keepalives_interval": 10, "keepalives_count": 3}


def display_url(url: str | URL) -> str:
    """The URL with its password hidden, for logs."""
    return repr(make_url(url))  # SQLAlchemy's repr masks the password as ***


def _parse(url: str) -> URL:
    """The URL SQLAlchemy opens; `postgres://` (Heroku's and libpq's spelling) is read as `postgresql://`,
    which is all SQLAlchemy >= 1.4 accepts."""
    try:
        parsed = make_url(url)
    except Exception:  # sqlalchemy.exc.ArgumentError and friends: not URL-shaped at all
        raise MigtError(f"{KEY}={url!r}: not a database URL; use e.g. sqlite:///path/optuna.db or "
                        "postgresql://user:password@host:5432/dbname") from None
    if parsed.drivername == "postgres" or parsed.drivername.startswith("postgres+"):
        parsed = parsed.set(drivername="postgresql" + parsed.drivername[len("postgres"):])
    return parsed


def _wait(conn: Any) -> None:
    """psycopg2's wait callback (psycopg2.extras.wait_select with a deadline): the wait for the server is a
    select() in Python, so Ctrl-C ends it at once, and a connection attempt ends after its connect_timeout
    (libpq does not apply it to a connection made this way)."""
    import psycopg2
    from psycopg2 import extensions

    deadline = None
    if conn.status == extensions.STATUS_SETUP:  # still connecting
        limit = float(conn.info.dsn_parameters.get("connect_timeout") or CONNECT_TIMEOUT_S)
        deadline = time.monotonic() + limit
    while True:
        state = conn.poll()
        if state == extensions.POLL_OK:
            return
        remaining = None if deadline is None else deadline - time.monotonic()
        if remaining is not None and remaining <= 0:
            raise psycopg2.OperationalError(f"the server did not answer within {limit:g} s")
        fd = [conn.fileno()]
        select.select(fd if state == extensions.POLL_READ else [], fd if state == extensions.POLL_WRITE else [],
                      [], remaining)


def _engine_kwargs(url: URL) -> dict[str, Any]:
    kwargs: dict[str, Any] = {"pool_pre_ping": True}
    if url.get_backend_name() == "postgresql" and url.get_driver_name() == "psycopg2":
        from psycopg2 import extensions

        extensions.set_wait_callback(_wait)
        args: dict[str, Any] = dict(KEEPALIVES)
        if "connect_timeout" not in url.query:
            args["connect_timeout"] = CONNECT_TIMEOUT_S
        kwargs["connect_args"] = args
    return kwargs


def _failure(url: URL, e: Exception) -> MigtError:
    """One line for what opening the storage raised: where it points and why it failed."""
    shown = display_url(url)
    orig = getattr(e, "orig", None) or e
    why = " ".join(str(orig).split()) or type(orig).__name__
    if isinstance(e, sqlalchemy.exc.NoSuchModuleError):
        return MigtError(f"{KEY}={shown}: unknown database type {url.drivername!r}; use sqlite:///... or "
                         "postgresql://...")
    if isinstance(e, ModuleNotFoundError):
        return MigtError(f"{KEY}={shown}: the driver for {url.drivername} is not installed ({why})")
    if url.get_backend_name() == "sqlite":
        return MigtError(f"{KEY}={shown}: cannot open the study file {url.database} ({why}); is its directory "
                         "writable?")
    where = (url.host or "localhost") + (f":{url.port}" if url.port else "")
    return MigtError(f"{KEY}={shown}: cannot use the database at {where} ({why})")


class PingedRDBStorage(RDBStorage):
    """RDBStorage with `pool_pre_ping` on (each pooled connection is tested before use) and, for PostgreSQL,
    a connection timeout, TCP keepalives and Ctrl-C during every wait for the server."""

    def __init__(self, url: str) -> None:
        parsed = _parse(url)
        log.info("study storage: connecting to %s", display_url(parsed))
        kwargs = _engine_kwargs(parsed)
        try:
            with _schema_lock(parsed, kwargs.get("connect_args", {})):
                super().__init__(parsed.render_as_string(hide_password=False), engine_kwargs=kwargs)
        except MigtError:
            raise
        except Exception as e:  # SQLAlchemy, the DB driver and Optuna raise many types; all name the URL
            raise _failure(parsed, e) from None

    def __repr__(self) -> str:  # the optuna sweeper logs "Storage: <storage>"
        return display_url(self.url)


@contextlib.contextmanager
def _schema_lock(url: URL, connect_args: dict[str, Any]) -> Iterator[None]:
    """Serialise Optuna's table creation between workers started together on an empty database.

    RDBStorage runs CREATE TABLE/TYPE on first use; two PostgreSQL workers doing so at once fail
    with a unique violation in pg_type. A session-level advisory lock makes the second wait and
    then find the tables. Other databases go through unchanged.
    """
    if url.get_backend_name() != "postgresql":
        yield
        return
    engine = sqlalchemy.create_engine(url, poolclass=NullPool, connect_args=connect_args)
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
