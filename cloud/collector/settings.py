"""The collector's settings: flags over ``LINEWATCH_*`` environment over defaults."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from cloud.db.session import DEFAULT_DB_URL
from cloud.errors import ConfigError

__all__ = ["BrokerAddress", "CollectorSettings", "broker_address"]

_DEFAULT_PORTS = {"mqtt": 1883, "mqtts": 8883}


class CollectorSettings(BaseSettings):
    """Everything ``linewatch collect`` needs; defaults run the one-machine demo."""

    model_config = SettingsConfigDict(env_prefix="LINEWATCH_", extra="ignore", frozen=True)

    mqtt_url: str = Field(default="mqtt://127.0.0.1:1883", repr=False)  # may hold a password
    mqtt_user: str | None = None
    mqtt_password: str | None = Field(default=None, repr=False)
    mqtt_tls_ca: Path | None = None
    db_url: str = DEFAULT_DB_URL
    store_dir: Path = Path("var/samples")
    collector_id: str = Field(default="linewatch-collector-1", min_length=1, max_length=64)
    share_group: str = Field(default="linewatch-collectors", pattern=r"^[A-Za-z0-9_-]+$")
    session_expiry_s: int = Field(default=7 * 24 * 3600, ge=0)
    receive_maximum: int = Field(default=256, ge=1, le=65535)
    batch_max: int = Field(default=128, ge=1)
    keepalive_s: int = Field(default=30, ge=5)
    reconnect_max_delay_s: int = Field(default=5, ge=1)


@dataclass(frozen=True)
class BrokerAddress:
    """Where the broker listens, and the credentials a URL may carry."""

    host: str
    port: int
    tls: bool
    username: str | None = None
    password: str | None = field(default=None, repr=False)

    @property
    def display(self) -> str:
        """The URL without its password, for logs and the console."""
        user = f"{self.username}@" if self.username else ""
        return f"{'mqtts' if self.tls else 'mqtt'}://{user}{self.host}:{self.port}"


def broker_address(url: str) -> BrokerAddress:
    """Parse ``mqtt://[user:password@]host:port`` or ``mqtts://…``.

    Raises:
        ConfigError: a URL that is not an MQTT URL with a host.
    """
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        port = -1
    if parts.scheme not in _DEFAULT_PORTS or not parts.hostname or port == -1:
        shown = parts._replace(netloc=parts.netloc.rpartition("@")[2]).geturl()
        msg = f"MQTT URL {shown!r}: expected mqtt://host:port or mqtts://host:port; fix --mqtt"
        raise ConfigError(msg)
    return BrokerAddress(
        parts.hostname,
        port or _DEFAULT_PORTS[parts.scheme],
        parts.scheme == "mqtts",
        username=parts.username,
        password=parts.password,
    )
