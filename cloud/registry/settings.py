"""Where MLflow lives and which key signs registrations, read once and passed in.

Default store: a SQLite file and an artifact folder under ``var/mlflow``;
``MLFLOW_TRACKING_URI`` points elsewhere.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from pydantic import AliasChoices, Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from cloud.errors import ConfigError
from cloud.signing import DEFAULT_SIGNING_KEY

__all__ = [
    "RegistrySettings",
    "artifact_location",
    "load_registry_settings",
    "registry_uri",
    "signing_key_path",
    "tracking_uri",
]

_REMOTE_SCHEMES = frozenset({"http", "https", "databricks"})


class RegistrySettings(BaseSettings):
    """Where MLflow lives; read once at start-up and passed in."""

    model_config = SettingsConfigDict(
        env_prefix="LINEWATCH_", populate_by_name=True, extra="ignore", frozen=True
    )

    mlflow_root: Path = Field(
        default=Path("var/mlflow"),
        description="folder of the default SQLite store and of local artifacts",
    )
    tracking_uri: str | None = Field(
        default=None,
        validation_alias=AliasChoices("MLFLOW_TRACKING_URI", "LINEWATCH_MLFLOW_TRACKING_URI"),
        description="an MLflow tracking URI; None: sqlite:///<mlflow_root>/mlflow.db",
    )
    # Not MLFLOW_REGISTRY_URI: MLflow writes that into the environment whenever it is
    # used, so a process (or its children) would follow whichever store it touched last.
    registry_uri: str | None = Field(
        default=None,
        validation_alias=AliasChoices("registry_uri", "LINEWATCH_MLFLOW_REGISTRY_URI"),
        description="the model registry URI; None: the tracking URI",
    )
    mlflow_experiment: str = Field(
        default="linewatch",
        min_length=1,
        description="experiment of training and registration runs",
    )
    signing_key: Path | None = Field(
        default=None,
        description="Ed25519 key that signs registered bundles; None: keys/signing.key if present",
    )


def load_registry_settings(**overrides: Any) -> RegistrySettings:
    """Build settings from the environment, flags overriding, failing in one readable line.

    Raises:
        ConfigError: a value pydantic refuses.
    """
    try:
        return RegistrySettings(
            **{key: value for key, value in overrides.items() if value is not None}
        )
    except ValidationError as exc:
        first = exc.errors()[0]
        msg = f"MLflow settings: {'.'.join(map(str, first['loc']))}: {first['msg']}"
        raise ConfigError(msg) from exc


def tracking_uri(settings: RegistrySettings) -> str:
    """The tracking URI: the configured one, else the SQLite file under ``mlflow_root``."""
    if settings.tracking_uri:
        return settings.tracking_uri
    return f"sqlite:///{(settings.mlflow_root.resolve() / 'mlflow.db').as_posix()}"


def registry_uri(settings: RegistrySettings) -> str:
    """The registry URI: the configured one, else the tracking URI."""
    return settings.registry_uri or tracking_uri(settings)


def artifact_location(settings: RegistrySettings, experiment: str) -> str | None:
    """Where a new experiment keeps artifacts: under ``mlflow_root`` unless a server decides.

    With no ``mlflow_root`` given, a SQLite tracking file keeps its artifacts
    beside it, so a ``--tracking-uri`` alone never writes into the current directory.
    """
    uri = tracking_uri(settings)
    if urlparse(uri).scheme in _REMOTE_SCHEMES:
        return None
    root = settings.mlflow_root.resolve()
    if "mlflow_root" not in settings.model_fields_set and uri.startswith("sqlite:///"):
        root = Path(uri.removeprefix("sqlite:///")).resolve().parent
    return (root / "artifacts" / experiment).as_uri()


def signing_key_path(settings: RegistrySettings) -> Path | None:
    """The key that signs registrations: the configured one, else ``keys/signing.key`` if present.

    Raises:
        ConfigError: a configured key file that does not exist.
    """
    if settings.signing_key is not None:
        if not settings.signing_key.is_file():
            msg = (
                f"signing key {settings.signing_key}: no such file; create a pair with "
                "`linewatch keys init --out keys/`"
            )
            raise ConfigError(msg)
        return settings.signing_key
    return DEFAULT_SIGNING_KEY if DEFAULT_SIGNING_KEY.is_file() else None
