"""The collector's settings: flags over ``LINEWATCH_*`` environment over defaults."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from cloud.db.session import DEFAULT_DB_URL
from edge.runtime.mqtt_link import BrokerAddress

__all__ = ["CollectorSettings"]


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
    # Unacknowledged messages in flight: deploy/mosquitto caps it at 256 (max_inflight_messages).
    receive_maximum: int = Field(default=256, ge=1, le=65535)
    batch_max: int = Field(default=128, ge=1, le=4096)  # half the in-flight window: two batches
    batch_max_bytes: int = Field(default=32 * 1024 * 1024, ge=1)  # payload bytes per transaction
    batch_wait_ms: float = Field(default=5.0, ge=0.0, le=1000.0)  # to fill a batch after its first
    store_workers: int = Field(default=4, ge=1, le=64)  # images written to the store at once
    max_clock_skew_s: float = Field(default=300.0, ge=0.0)  # a message's time may be this far ahead
    rejected_payload_max_bytes: int = Field(default=64 * 1024, ge=0)  # kept of a refused payload
    metrics_address: str | None = None  # [HOST]:PORT of the Prometheus endpoint, off when None
    keepalive_s: int = Field(default=30, ge=5)
    reconnect_max_delay_s: int = Field(default=5, ge=1)

    @property
    def broker(self) -> BrokerAddress:
        """The broker from ``mqtt_url``, with ``mqtt_user``/``mqtt_password`` taking precedence.

        Raises:
            ConfigError: an MQTT URL that cannot be parsed (shown without its password).
        """
        return BrokerAddress.from_url(self.mqtt_url).with_credentials(
            self.mqtt_user, self.mqtt_password
        )
