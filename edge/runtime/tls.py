"""Mutual TLS for every gRPC link of the plant, and who a peer certificate says it is.

The cloud issues certificates from the plant CA (``cloud.pki``); nodes, the
deployer and clients load them here. A certificate names its holder (common name)
and its role (organisational unit), and the CA's revocation list (``crl.pem``)
names the ones no longer trusted. Both sides share this module so the two ends
of a link can never disagree on what a role is.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

import grpc
from cryptography import x509

from edge.runtime.errors import ConfigError

__all__ = [
    "CA_FILE",
    "CRL_FILE",
    "PeerIdentity",
    "RevocationList",
    "Role",
    "TlsFiles",
    "channel_credentials",
    "peer_identity",
    "server_credentials",
]

logger = logging.getLogger(__name__)

CA_FILE = "ca.pem"
CRL_FILE = "crl.pem"


class Role(StrEnum):
    """What the holder of a plant certificate may do."""

    NODE = "node"  # an inference node: serves gRPC, publishes its own MQTT topics
    DEPLOYER = "deployer"  # the cloud's deployer: may push, activate and roll back models
    COLLECTOR = "collector"  # reads the collectors' shared MQTT subscription
    CLIENT = "client"  # may ask a node for inspections, nothing else
    WEB = "web"  # the operators' web app: serves HTTPS, calls no node


@dataclass(frozen=True)
class TlsFiles:
    """A party's certificate, its key and the plant CA it trusts."""

    certificate: Path
    private_key: Path
    ca: Path

    def read(self) -> tuple[bytes, bytes, bytes]:
        """Return (certificate, key, CA) PEM bytes.

        Raises:
            ConfigError: a file that is missing or unreadable, named.
        """
        contents: list[bytes] = []
        for what, path in (
            ("certificate", self.certificate),
            ("private key", self.private_key),
            ("CA certificate", self.ca),
        ):
            try:
                contents.append(path.read_bytes())
            except OSError as exc:
                msg = (
                    f"TLS {what} {path}: cannot read it ({exc.strerror}); issue one with "
                    "`linewatch certs issue` and pass its path"
                )
                raise ConfigError(msg) from exc
        return contents[0], contents[1], contents[2]


def server_credentials(files: TlsFiles) -> grpc.ServerCredentials:
    """Server credentials that demand a client certificate from the plant CA."""
    certificate, key, ca = files.read()
    return grpc.ssl_server_credentials(
        [(key, certificate)], root_certificates=ca, require_client_auth=True
    )


def channel_credentials(files: TlsFiles) -> grpc.ChannelCredentials:
    """Channel credentials that present this party's certificate and trust the plant CA."""
    certificate, key, ca = files.read()
    return grpc.ssl_channel_credentials(
        root_certificates=ca, private_key=key, certificate_chain=certificate
    )


@dataclass(frozen=True)
class PeerIdentity:
    """Who called, as its verified certificate says."""

    name: str
    role: Role | None
    serial: int


def peer_identity(context: grpc.ServicerContext) -> PeerIdentity | None:
    """The verified client certificate's identity, or None on a plaintext link."""
    auth = context.auth_context()
    pems = auth.get("x509_pem_cert")
    if not pems:
        return None
    certificate = x509.load_pem_x509_certificate(pems[0])
    names = certificate.subject.get_attributes_for_oid(x509.oid.NameOID.COMMON_NAME)
    units = certificate.subject.get_attributes_for_oid(x509.oid.NameOID.ORGANIZATIONAL_UNIT_NAME)
    unit = str(units[0].value) if units else ""
    role = Role(unit) if unit in Role._value2member_map_ else None
    name = str(names[0].value) if names else ""
    return PeerIdentity(name, role, certificate.serial_number)


class RevocationList:
    """The plant CA's revoked serials, re-read when ``crl.pem`` changes on disk."""

    def __init__(self, path: Path | None, ca: Path) -> None:
        self._path = path
        self._ca = ca
        self._lock = threading.Lock()
        self._stamp: tuple[int, int] | None = None
        self._serials: frozenset[int] = frozenset()

    def is_revoked(self, serial: int) -> bool:
        """Whether the CA revoked this serial.

        Raises:
            ConfigError: the list is unreadable or not signed by the CA; the caller
                refuses the call, so a tampered list never lets a revoked peer in.
        """
        if self._path is None:
            return False
        self._reload()
        return serial in self._serials

    def _reload(self) -> None:
        assert self._path is not None
        try:
            stat = self._path.stat()
        except FileNotFoundError:
            return
        stamp = (stat.st_mtime_ns, stat.st_size)
        with self._lock:
            if stamp == self._stamp:
                return
            self._serials = self._load(self._path)
            self._stamp = stamp

    def _load(self, path: Path) -> frozenset[int]:
        try:
            crl = x509.load_pem_x509_crl(path.read_bytes())
            issuer = x509.load_pem_x509_certificate(self._ca.read_bytes())
        except (OSError, ValueError) as exc:
            msg = f"revocation list {path}: unreadable ({exc}); copy the CA's crl.pem again"
            raise ConfigError(msg) from exc
        if not crl.is_signature_valid(issuer.public_key()):  # type: ignore[arg-type]
            msg = f"revocation list {path} is not signed by the plant CA {self._ca}"
            raise ConfigError(msg)
        logger.info("revocation list loaded path=%s revoked=%d", path, len(crl))
        return frozenset(entry.serial_number for entry in crl)
