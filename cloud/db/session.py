"""Engines and sessions from a URL: SQLite by default, PostgreSQL a URL away.

SQLite gets WAL (readers never block the collector's writes), foreign keys on,
``synchronous=FULL`` (a committed row survives a power cut: the collector
acknowledges a message to the broker only after the commit) and a busy timeout.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.orm import Session, sessionmaker

from cloud.errors import StoreError

__all__ = ["DEFAULT_DB_URL", "make_engine", "make_session_factory"]

logger = logging.getLogger(__name__)

DEFAULT_DB_URL = "sqlite:///var/linewatch.db"
_SQLITE_BUSY_TIMEOUT_S = 30.0


def make_engine(url: str, *, create_dirs: bool = True) -> Engine:
    """Return an engine for ``url``; for a SQLite file, create its folder when asked.

    Raises:
        StoreError: a URL SQLAlchemy cannot parse or a driver that is not installed.
    """
    try:
        parsed = make_url(url)
        if parsed.drivername == "postgresql":
            # A bare postgresql:// means psycopg 3 in SQLAlchemy 2.1; we ship psycopg2.
            parsed = parsed.set(drivername="postgresql+psycopg2")
        if parsed.get_backend_name() != "sqlite":
            return create_engine(parsed, pool_pre_ping=True)
        database = parsed.database or ""
        if create_dirs and database and database != ":memory:":
            Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": _SQLITE_BUSY_TIMEOUT_S})
    except (ArgumentError, ImportError, OSError) as exc:
        msg = f"database URL {url!r}: {exc}; pass e.g. sqlite:///var/linewatch.db or postgresql://…"
        raise StoreError(msg) from exc
    event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    """Return a session factory whose objects stay readable after commit."""
    return sessionmaker(engine, expire_on_commit=False)


def _sqlite_pragmas(dbapi_connection: Any, connection_record: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=FULL")
    finally:
        cursor.close()
