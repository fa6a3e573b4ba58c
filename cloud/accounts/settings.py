"""Settings of ``linewatch users``: the database and, for scripts, the new password."""

from __future__ import annotations

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from cloud.db.session import DEFAULT_DB_URL

__all__ = ["AccountSettings"]


class AccountSettings(BaseSettings):
    """Flags over ``LINEWATCH_*`` environment over defaults (the demo's SQLite file)."""

    model_config = SettingsConfigDict(env_prefix="LINEWATCH_", extra="ignore", frozen=True)

    db_url: str = DEFAULT_DB_URL
    password: SecretStr | None = Field(default=None, repr=False)  # LINEWATCH_PASSWORD
