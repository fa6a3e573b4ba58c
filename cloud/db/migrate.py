"""Alembic migrations run from code: no ``alembic.ini`` needed in the working folder.

The scripts ship inside the package (``cloud/db/migrations``), so an installed
``linewatch`` can upgrade any database it is pointed at.
"""

from __future__ import annotations

import logging
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from cloud.db.session import make_engine
from cloud.errors import ConfigError, StoreError

__all__ = [
    "MIGRATIONS_DIR",
    "alembic_config",
    "current_revision",
    "head_revision",
    "require_migrated",
    "upgrade",
]

logger = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def alembic_config(url: str) -> Config:
    """Return an Alembic config pointing at the packaged scripts and at ``url``."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))  # configparser escapes
    return config


def upgrade(url: str, revision: str = "head") -> str | None:
    """Bring the database at ``url`` to ``revision``; returns the revision it is at.

    Raises:
        StoreError: the database is unreachable or a migration failed.
    """
    config = alembic_config(url)
    engine = make_engine(url)
    try:
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, revision)
        return current_revision(url)
    except SQLAlchemyError as exc:
        msg = f"database {engine.url!r}: migration to {revision} failed ({exc}); check the URL"
        raise StoreError(msg) from exc
    finally:
        engine.dispose()


def current_revision(url: str) -> str | None:
    """Return the revision the database is at, or None when it was never migrated.

    Raises:
        StoreError: the database cannot be reached.
    """
    engine = make_engine(url, create_dirs=False)
    try:
        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    except SQLAlchemyError as exc:
        msg = f"database {engine.url!r}: cannot read its revision ({exc}); check the URL"
        raise StoreError(msg) from exc
    finally:
        engine.dispose()


def head_revision() -> str | None:
    """Return the newest revision the packaged scripts know."""
    return ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()


def require_migrated(url: str) -> str:
    """Return ``url`` if it holds Linewatch tables; for commands that only read.

    Raises:
        ConfigError: a missing SQLite file or a database never migrated, naming the fix.
    """
    parsed = make_url(url)
    missing_file = (
        parsed.get_backend_name() == "sqlite" and not Path(parsed.database or "").is_file()
    )
    if missing_file or current_revision(url) is None:
        msg = f"database {url}: no Linewatch tables; run `linewatch db upgrade --db {url}` first"
        raise ConfigError(msg)
    return url
