"""The web app's settings: flags over ``LINEWATCH_*`` environment over defaults."""

from __future__ import annotations

import logging
import os
import secrets
from pathlib import Path

from pydantic import Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from cloud.db.session import DEFAULT_DB_URL
from cloud.errors import ConfigError

__all__ = [
    "WebSettings",
    "cookies_secure",
    "listen_address",
    "load_web_settings",
    "session_secret",
    "tls_files",
]

logger = logging.getLogger(__name__)

_SECRET_FILE = "web-secret"


class WebSettings(BaseSettings):
    """Everything ``linewatch web`` needs; defaults serve the one-machine demo."""

    model_config = SettingsConfigDict(env_prefix="LINEWATCH_", extra="ignore", frozen=True)

    db_url: str = DEFAULT_DB_URL
    store_dir: Path = Path("var/samples")
    listen: str = "127.0.0.1:8080"
    tracking_uri: str | None = None
    # How long a page waits for MLflow before it says the registry did not answer.
    registry_timeout_s: float = Field(default=10.0, gt=0, le=300)
    web_secret: SecretStr | None = Field(default=None, repr=False)
    var_dir: Path = Path("var")  # where a generated session secret is kept
    session_max_age_s: int = Field(default=8 * 3600, ge=60)
    tls_cert: Path | None = None  # the server certificate (linewatch certs issue --web NAME)
    tls_key: Path | None = None
    insecure: bool = False  # plain HTTP, for a lab: logged as a warning
    secure_cookies: bool | None = None  # default: on unless insecure (cookies only over TLS)
    live_poll_s: float = Field(default=0.5, gt=0, le=10)
    embed_interval_s: float = Field(default=2.0, gt=0)
    embed_batch: int = Field(default=500, ge=1)


def load_web_settings(**flags: object) -> WebSettings:
    """Build settings, flags (not None) overriding the environment, in one readable error.

    Raises:
        ConfigError: a value pydantic refuses.
    """
    try:
        return WebSettings(**{k: v for k, v in flags.items() if v is not None})  # type: ignore[arg-type]
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(part) for part in first["loc"])
        msg = f"setting {field}: {first['msg']} (got {first.get('input')!r})"
        raise ConfigError(msg) from exc


def cookies_secure(settings: WebSettings) -> bool:
    """Whether session cookies travel only over TLS: yes, unless the server runs insecure."""
    if settings.secure_cookies is not None:
        return settings.secure_cookies
    return not settings.insecure


def tls_files(settings: WebSettings) -> tuple[Path, Path] | None:
    """The certificate and key to serve HTTPS with, or None when ``insecure``.

    Raises:
        ConfigError: neither TLS files nor ``insecure``, or a file that is missing.
    """
    if settings.insecure:
        return None
    if settings.tls_cert is None or settings.tls_key is None:
        msg = (
            "the web app serves HTTPS: pass --tls-cert and --tls-key (a server certificate, "
            "e.g. `linewatch certs issue --web NAME --host HOSTNAME`), or --insecure for a lab"
        )
        raise ConfigError(msg)
    for path in (settings.tls_cert, settings.tls_key):
        if not path.is_file():
            msg = f"TLS file {path} does not exist; issue one with `linewatch certs issue --web`"
            raise ConfigError(msg)
    return settings.tls_cert, settings.tls_key


def listen_address(text: str) -> tuple[str, int]:
    """Parse ``HOST:PORT`` (``[::1]:8080`` for IPv6).

    Raises:
        ConfigError: not a host and a port number.
    """
    host, _, port = text.rpartition(":")
    host = host.strip("[]")
    if not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        msg = f"--listen {text!r}: expected HOST:PORT, e.g. 127.0.0.1:8080"
        raise ConfigError(msg)
    return host, int(port)


def session_secret(settings: WebSettings) -> str:
    """Return the key that signs session cookies: configured, or generated once and kept.

    A generated key lives in ``var_dir/web-secret`` (mode 0600), so sessions
    survive a restart and several workers on one machine agree.

    Raises:
        ConfigError: the key file cannot be read or written.
    """
    if settings.web_secret is not None:
        return settings.web_secret.get_secret_value()
    path = settings.var_dir / _SECRET_FILE
    try:
        if path.is_file():
            return path.read_text().strip()
        path.parent.mkdir(parents=True, exist_ok=True)
        secret = secrets.token_urlsafe(48)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            handle.write(secret)
    except FileExistsError:
        return path.read_text().strip()  # another worker wrote it first
    except OSError as exc:
        msg = f"session key {path}: {exc}; set LINEWATCH_WEB_SECRET or a writable --var-dir"
        raise ConfigError(msg) from exc
    logger.info("generated a session key path=%s", path)
    return secret
