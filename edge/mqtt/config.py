"""How a node reaches its broker and where it keeps what it has not sent yet.

Built from the same URL a person types (``mqtt://host:1883``, ``mqtts://host:8883``)
so that the node's settings stay a handful of strings.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from edge.runtime.mqtt_link import BrokerAddress

__all__ = ["MqttConfig"]


class MqttConfig(BaseModel):
    """Broker address, credentials, outbox location and the publisher's pacing."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    host: str
    port: int = Field(default=1883, gt=0, lt=65536)
    tls: bool = False
    username: str | None = None
    password: str | None = Field(default=None, repr=False)
    tls_ca: Path | None = None
    outbox_dir: Path = Path("var/outbox")
    outbox_quota_bytes: int = Field(default=1 << 30, gt=0)
    keepalive_s: int = Field(default=30, ge=5)
    heartbeat_interval_s: float = Field(default=10.0, gt=0.0)
    inflight_window: int = Field(default=32, ge=1, le=65535)
    reconnect_min_delay_s: int = Field(default=1, ge=1)
    reconnect_max_delay_s: int = Field(default=30, ge=1)
    client_id: str | None = None

    @property
    def broker(self) -> BrokerAddress:
        """Host, port, TLS and credentials, in the form the shared client builder takes."""
        return BrokerAddress(self.host, self.port, self.tls, self.username, self.password)

    @property
    def address(self) -> str:
        """The broker URL without the password, for logs."""
        return self.broker.display

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        username: str | None = None,
        password: str | None = None,
        tls_ca: Path | None = None,
        outbox_dir: Path = Path("var/outbox"),
        outbox_quota_mb: float = 1024.0,
        **pacing: float | int | str | None,
    ) -> MqttConfig:
        """Parse ``mqtt://[user:password@]host[:port]`` or ``mqtts://…`` into a config.

        Args:
            url: the broker URL; ``mqtts`` turns TLS on.
            username: overrides a user in the URL.
            password: overrides a password in the URL.
            tls_ca: a CA bundle to verify the broker with (implies TLS).
            outbox_dir: the folder of the durable outbox.
            outbox_quota_mb: disk quota of the outbox in MiB.
            **pacing: other fields (``heartbeat_interval_s``, ``inflight_window``, …).

        Raises:
            ConfigError: a URL that is not ``mqtt://`` or ``mqtts://`` with a host and a
                valid port (the message never shows the password).
        """
        broker = BrokerAddress.from_url(url).with_credentials(username, password)
        return cls(
            host=broker.host,
            port=broker.port,
            tls=broker.tls or tls_ca is not None,
            username=broker.username,
            password=broker.password,
            tls_ca=tls_ca,
            outbox_dir=outbox_dir,
            outbox_quota_bytes=int(outbox_quota_mb * (1 << 20)),
            **pacing,  # type: ignore[arg-type]
        )
