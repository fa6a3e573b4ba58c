"""The deployer's settings: flags over ``LINEWATCH_*`` environment over defaults."""

from __future__ import annotations

from typing import Any

from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from cloud.db.session import DEFAULT_DB_URL
from cloud.deploy.pusher import ClientOptions
from cloud.errors import ConfigError

__all__ = ["DeploySettings", "load_deploy_settings"]


class DeploySettings(BaseSettings):
    """Where the record goes and how hard the deployer pushes; defaults suit one machine."""

    model_config = SettingsConfigDict(env_prefix="LINEWATCH_", extra="ignore", frozen=True)

    db_url: str = DEFAULT_DB_URL
    deploy_concurrency: int = Field(default=4, ge=1, description="nodes updated at once")
    deploy_chunk_kb: int = Field(default=1024, ge=1, le=8192, description="Push chunk size")
    deploy_timeout_s: float = Field(default=30.0, gt=0.0, description="unary call deadline")
    activate_timeout_s: float = Field(default=120.0, gt=0.0, description="Activate deadline")
    push_attempts: int = Field(default=4, ge=1, description="resumed attempts per push")

    def client_options(self) -> ClientOptions:
        """The node client options these settings ask for."""
        return ClientOptions(
            timeout_s=self.deploy_timeout_s,
            activate_timeout_s=self.activate_timeout_s,
            chunk_bytes=self.deploy_chunk_kb * 1024,
            max_attempts=self.push_attempts,
        )


def load_deploy_settings(**overrides: Any) -> DeploySettings:
    """Build settings, flags (not None) overriding the environment.

    Raises:
        ConfigError: a value that does not validate, named in one line.
    """
    try:
        return DeploySettings(
            **{key: value for key, value in overrides.items() if value is not None}
        )
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        msg = f"deploy setting {where}: {first['msg']} (got {first.get('input')!r})"
        raise ConfigError(msg) from exc
