"""Where a retrain reads reviews and keeps its lock: read once at start-up, passed in."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from cloud.db.session import DEFAULT_DB_URL
from cloud.errors import ConfigError

__all__ = ["RetrainSettings", "load_retrain_settings"]


class RetrainSettings(BaseSettings):
    """The retrain process's settings; flags override ``LINEWATCH_*`` variables."""

    model_config = SettingsConfigDict(env_prefix="LINEWATCH_", extra="ignore", frozen=True)

    db_url: str = DEFAULT_DB_URL
    store_dir: Path = Field(default=Path("var/samples"), description="the collector's image store")
    state_dir: Path = Field(
        default=Path("var/retrain"), description="per-model lock files and watch state"
    )
    recall: float = Field(
        default=1.0, gt=0.0, le=1.0, description="share of reviewed defects the threshold catches"
    )
    check_interval_s: float = Field(default=60.0, gt=0.0, description="--watch: between checks")


def load_retrain_settings(**overrides: Any) -> RetrainSettings:
    """Build settings from the environment, flags overriding, failing in one readable line.

    Raises:
        ConfigError: a value pydantic refuses.
    """
    try:
        return RetrainSettings(
            **{key: value for key, value in overrides.items() if value is not None}
        )
    except ValidationError as exc:
        first = exc.errors()[0]
        msg = f"retrain settings: {'.'.join(map(str, first['loc']))}: {first['msg']}"
        raise ConfigError(msg) from exc
