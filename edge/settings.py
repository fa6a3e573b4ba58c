"""Settings of one edge node: flags override the environment, which overrides the file.

Every option of ``linewatch-edge serve`` lives here, so a node can be run from a
TOML file (``--config node.toml``), from ``LINEWATCH_*`` environment variables
(the Kubernetes way) or from flags. Modules receive an ``EdgeSettings``; none
of them reads the environment.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from edge.runtime.errors import ConfigError

__all__ = ["EdgeSettings", "load_settings"]

# Never the working directory: a node started from anywhere keeps its state in one place.
_DATA_DIR = Path("~/.local/share/linewatch").expanduser()


class EdgeSettings(BaseSettings):
    """Everything one inference node needs; defaults run the demo on one machine."""

    model_config = SettingsConfigDict(env_prefix="LINEWATCH_", extra="forbid", frozen=True)

    # What to run and where it stands.
    bundle: Path | None = Field(default=None, description="model bundle directory or .tar")
    camera: str | None = Field(
        default=None, description="video file, image folder, RTSP/HTTP URL or USB index"
    )
    loop: bool = Field(default=False, description="replay a file or folder source forever")
    site: str = "site"
    line: str = "line"
    node: str = "node"

    # gRPC.
    grpc: str = Field(default="127.0.0.1:50051", description="host:port to listen on")
    grpc_workers: int = Field(
        default=16, ge=3, description="threads serving RPCs (one always kept for health)"
    )
    inference_workers: int = Field(default=2, ge=1, description="threads running inspections")
    stream_window: int = Field(default=4, ge=1, description="in-flight frames per stream")
    max_message_bytes: int = Field(default=16 * 1024 * 1024, ge=1024)
    max_pixels: int = Field(default=25_000_000, ge=1)
    shutdown_grace_s: float = Field(default=10.0, ge=0.0)

    # Engine.
    providers: list[str] | None = Field(
        default=None, description="execution providers in order; default TensorRT, CUDA, CPU"
    )
    intra_op_threads: int = Field(default=0, ge=0, description="0: ONNX Runtime's choice")
    inter_op_threads: int = Field(default=1, ge=1)
    tensorrt_cache_dir: Path | None = None
    tensorrt_fp16: bool = False
    warmup_runs: int = Field(default=3, ge=1)

    # Micro-batching: frames waiting at the same moment share one ONNX Runtime run.
    # ``inference_workers`` also bounds the runs at once, so under load frames queue
    # into batches instead of threads fighting over the cores.
    batch_max: int = Field(default=8, ge=1, description="most frames per run; 1: no batching")
    batch_wait_ms: float = Field(
        default=0.0, ge=0.0, le=100.0, description="wait for frames still decoding; 0: never"
    )

    # Camera loop.
    camera_queue: int = Field(default=2, ge=1, description="frames buffered from a live source")
    reconnect_initial_s: float = Field(default=0.5, gt=0.0)
    reconnect_max_s: float = Field(default=30.0, gt=0.0)
    sink_queue: int = Field(default=256, ge=1, description="frames waiting for the sinks")

    # Local record of decisions.
    record_dir: Path = Field(default_factory=lambda: _DATA_DIR / "record")
    record_verdicts: int = Field(default=10_000, ge=1, description="last N verdicts kept")
    record_quota_mb: float = Field(default=512.0, gt=0.0)

    # Metrics.
    metrics: str | None = Field(default=None, description="[host]:port of /metrics; off if unset")

    # MQTT: alerts, samples and status go out through a durable outbox.
    mqtt_url: str | None = Field(  # repr=False: it may carry a password
        default=None, description="mqtt://host:1883; off if unset", repr=False
    )
    advertise_address: str | None = Field(
        default=None, description="host:port the cloud reaches this node at (status heartbeat)"
    )
    mqtt_user: str | None = None
    mqtt_password: str | None = Field(default=None, repr=False)
    mqtt_password_file: Path | None = Field(
        default=None, description="a file holding the MQTT password (a mounted secret)"
    )
    mqtt_tls_ca: Path | None = None
    outbox_dir: Path = Field(default_factory=lambda: _DATA_DIR / "outbox")
    outbox_quota_mb: float = Field(default=256.0, gt=0.0)
    model_dir: Path | None = Field(
        default=None, description="where pushed bundles live; the active one survives restarts"
    )
    trusted_key: Path | None = Field(
        default=None, description="the cloud's Ed25519 public key; pushes must be signed by it"
    )
    keep_bundles: int = Field(default=3, ge=2, description="bundles kept for rollback")
    model_dir_quota_mb: float | None = Field(default=None, gt=0.0, description="staging limit")
    require_golden: bool = Field(
        default=True, description="refuse a pushed bundle without golden images"
    )
    parity_score_tolerance: float = Field(default=0.05, ge=0.0)
    parity_map_tolerance: float = Field(default=0.1, ge=0.0)
    allow_unsigned: bool = Field(
        default=False,
        description="accept pushes without a signed release (development only; warns)",
    )

    # gRPC security: mutual TLS with the plant CA's certificates, plaintext only on request.
    tls_cert: Path | None = Field(
        default=None, description="this node's certificate (linewatch certs issue --node NAME)"
    )
    tls_key: Path | None = Field(default=None, description="this node's private key")
    tls_ca: Path | None = Field(default=None, description="the plant CA certificate (ca.pem)")
    tls_crl: Path | None = Field(
        default=None, description="the CA's revocation list (crl.pem), re-read when it changes"
    )
    insecure: bool = Field(
        default=False, description="serve plaintext gRPC with no client certificates (a lab)"
    )

    @field_validator("grpc")
    @classmethod
    def _host_port(cls, value: str) -> str:
        host, sep, port = value.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
            msg = f"grpc address {value!r} is not host:port (e.g. 0.0.0.0:50051)"
            raise ValueError(msg)
        return value

    @field_validator("metrics")
    @classmethod
    def _metrics_port(cls, value: str | None) -> str | None:
        if value is None:
            return None
        _, _, port = value.rpartition(":")
        if not port.isdigit() or not 0 <= int(port) <= 65535:
            msg = f"metrics address {value!r} is not [host]:port (e.g. :9100)"
            raise ValueError(msg)
        return value

    def mqtt_login_password(self) -> str | None:
        """The MQTT password, from ``mqtt_password`` or read from ``mqtt_password_file``.

        A file lets one DaemonSet give every node its own password: each pod reads
        the secret's key named after its node.

        Raises:
            ConfigError: both are set, or the file cannot be read or is empty.
        """
        if self.mqtt_password_file is None:
            return self.mqtt_password
        if self.mqtt_password is not None:
            msg = "set mqtt_password or mqtt_password_file, not both"
            raise ConfigError(msg)
        try:
            password = self.mqtt_password_file.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            msg = (
                f"cannot read the MQTT password file {self.mqtt_password_file} ({exc}); "
                "check the mounted secret has a key named after this node"
            )
            raise ConfigError(msg) from exc
        if not password:
            msg = f"the MQTT password file {self.mqtt_password_file} is empty"
            raise ConfigError(msg)
        return password

    @property
    def metrics_address(self) -> tuple[str, int] | None:
        """``(host, port)`` of the metrics endpoint, or None when off."""
        if self.metrics is None:
            return None
        host, _, port = self.metrics.rpartition(":")
        return host or "0.0.0.0", int(port)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Flags (init) over environment over the TOML file, if one was given."""
        return (init_settings, env_settings, TomlConfigSettingsSource(settings_cls))


def load_settings(config_file: Path | None = None, **overrides: Any) -> EdgeSettings:
    """Build settings from flags, the environment and an optional TOML file.

    Args:
        config_file: a TOML file with top-level keys named like the fields.
        **overrides: values from flags; None means "not given" and is ignored.

    Raises:
        ConfigError: a missing or unreadable file, or a value that does not validate,
            named in one line.
    """
    given = {key: value for key, value in overrides.items() if value is not None}
    settings_cls: type[EdgeSettings] = EdgeSettings
    if config_file is not None:
        try:
            with config_file.open("rb") as handle:
                tomllib.load(handle)
        except (OSError, tomllib.TOMLDecodeError) as exc:
            msg = f"config {config_file}: cannot read it as TOML ({exc})"
            raise ConfigError(msg) from exc
        config = SettingsConfigDict(**{**EdgeSettings.model_config, "toml_file": config_file})
        settings_cls = type("EdgeSettingsFromFile", (EdgeSettings,), {"model_config": config})
    try:
        return settings_cls(**given)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "settings"
        msg = (
            f"setting {where!r}: {first['msg']} (got {first.get('input')!r}); fix the flag, "
            "the LINEWATCH_ variable or the config file"
        )
        raise ConfigError(msg) from exc
