"""The deployer's settings: flags over ``LINEWATCH_*`` environment over defaults.

The deployer talks to nodes over mutual TLS with its own certificate from the
plant CA (``linewatch certs issue --deployer``); the defaults point where that
command writes it. Plaintext takes an explicit ``--insecure``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from cloud.db.session import DEFAULT_DB_URL
from cloud.deploy.pusher import ClientOptions
from cloud.errors import ConfigError
from cloud.pki import DEFAULT_PKI_DIR
from cloud.signing import DEFAULT_SIGNING_KEY
from edge.runtime.tls import CA_FILE, TlsFiles

__all__ = ["DeploySettings", "load_deploy_settings"]

logger = logging.getLogger(__name__)


class DeploySettings(BaseSettings):
    """Where the record goes and how hard the deployer pushes; defaults suit one machine."""

    model_config = SettingsConfigDict(env_prefix="LINEWATCH_", extra="ignore", frozen=True)

    db_url: str = DEFAULT_DB_URL
    deploy_concurrency: int = Field(default=4, ge=1, description="nodes updated at once")
    deploy_chunk_kb: int = Field(default=1024, ge=1, le=8192, description="Push chunk size")
    deploy_timeout_s: float = Field(default=30.0, gt=0.0, description="unary call deadline")
    activate_timeout_s: float = Field(default=120.0, gt=0.0, description="Activate deadline")
    push_attempts: int = Field(default=4, ge=1, description="resumed attempts per push")
    signing_key: Path = Field(
        default=DEFAULT_SIGNING_KEY, description="Ed25519 key that signs each release"
    )
    tls_cert: Path = Field(
        default=DEFAULT_PKI_DIR / "deployer-deployer.pem", description="the deployer's certificate"
    )
    tls_key: Path = Field(default=DEFAULT_PKI_DIR / "deployer-deployer.key")
    tls_ca: Path = Field(default=DEFAULT_PKI_DIR / CA_FILE, description="the plant CA")
    insecure: bool = Field(default=False, description="plaintext gRPC to nodes (a lab)")

    def tls_files(self) -> TlsFiles | None:
        """The deployer's certificate, key and CA; None (with a warning) when ``insecure``.

        Raises:
            ConfigError: a file is missing, named, with the command that makes it.
        """
        if self.insecure:
            logger.warning(
                "deploying over PLAINTEXT gRPC (insecure): nodes cannot tell this deployer "
                "from anyone else; use the deployer's certificate outside a lab"
            )
            return None
        missing = [str(path) for path in (self.tls_cert, self.tls_key, self.tls_ca)]
        missing = [path for path in missing if not Path(path).is_file()]
        if missing:
            msg = (
                f"deployer TLS: {', '.join(missing)} not found; make them with `linewatch certs "
                "init` (once) and `linewatch certs issue --deployer`, pass --tls-cert/--tls-key/"
                "--tls-ca, or --insecure for plaintext lab nodes"
            )
            raise ConfigError(msg)
        return TlsFiles(self.tls_cert, self.tls_key, self.tls_ca)

    def client_options(self) -> ClientOptions:
        """The node client options these settings ask for.

        Raises:
            ConfigError: TLS files missing and not ``insecure`` (see ``tls_files``).
        """
        return ClientOptions(
            timeout_s=self.deploy_timeout_s,
            activate_timeout_s=self.activate_timeout_s,
            chunk_bytes=self.deploy_chunk_kb * 1024,
            max_attempts=self.push_attempts,
            tls=self.tls_files(),
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
