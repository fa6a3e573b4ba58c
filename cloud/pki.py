"""The plant's own certificate authority: one CA, one certificate per identity.

Every gRPC link in the plant is TLS with client certificates from this CA, and
every MQTT client can be one too. A certificate says who its holder is (its
common name) and what it may do (its role, in the subject's organisational unit):
a ``node`` serves inspections and models, a ``deployer`` may push and switch
models, a ``collector`` reads the shared MQTT subscription, a ``client`` may only
ask for inspections. Revocation is a CRL signed by the CA that nodes reload.

The CA key never leaves the cloud and, like every private key here, is written
readable by its owner only (0600). Nothing is ever overwritten: a new CA would
orphan every certificate in the plant.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import logging
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from cloud.errors import ConfigError
from edge.runtime.tls import CA_FILE, CRL_FILE, Role

__all__ = [
    "CA_KEY_FILE",
    "DEFAULT_PKI_DIR",
    "IssuedCertificate",
    "PlantCa",
    "init_ca",
    "issue_certificate",
    "load_ca",
    "revoke_certificate",
]

logger = logging.getLogger(__name__)

DEFAULT_PKI_DIR = Path("keys") / "pki"
CA_KEY_FILE = "ca.key"
_NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_CLOCK_SKEW = dt.timedelta(minutes=5)


@dataclass(frozen=True)
class PlantCa:
    """The CA's certificate and key, loaded from its folder."""

    directory: Path
    certificate: x509.Certificate
    private_key: ec.EllipticCurvePrivateKey

    @property
    def certificate_path(self) -> Path:
        """Where the CA certificate every party trusts lies."""
        return self.directory / CA_FILE


@dataclass(frozen=True)
class IssuedCertificate:
    """Where a new certificate and its key were written, and what they say."""

    name: str
    role: Role
    certificate: Path
    private_key: Path
    serial: int
    not_after: dt.datetime


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _write_new(path: Path, data: bytes, mode: int) -> None:
    """Create ``path`` with ``mode`` from the start, refusing to overwrite."""
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    except FileExistsError as exc:
        msg = f"{path} exists; certificates and keys are never overwritten (revoke, then reissue)"
        raise ConfigError(msg) from exc
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(data)


def _private_bytes(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def init_ca(directory: Path, *, common_name: str = "Linewatch plant CA", days: int = 3650) -> Path:
    """Create the plant CA in ``directory`` (``ca.pem``, ``ca.key``, an empty ``crl.pem``).

    Returns:
        The CA certificate's path, to give to every node, deployer and collector.

    Raises:
        ConfigError: a CA already exists there, or the folder cannot be written.
    """
    directory.mkdir(parents=True, exist_ok=True)
    if (directory / CA_FILE).exists() or (directory / CA_KEY_FILE).exists():
        msg = f"{directory} already holds a CA; a new one would orphan every certificate it issued"
        raise ConfigError(msg)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = _now()
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _CLOCK_SKEW)
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    _write_new(directory / CA_KEY_FILE, _private_bytes(key), 0o600)
    _write_new(directory / CA_FILE, certificate.public_bytes(serialization.Encoding.PEM), 0o644)
    ca = PlantCa(directory, certificate, key)
    _write_crl(ca, [])
    logger.info("plant CA created dir=%s", directory)
    return directory / CA_FILE


def load_ca(directory: Path) -> PlantCa:
    """Load the CA made by :func:`init_ca`.

    Raises:
        ConfigError: no CA there, or its files are not a certificate and key.
    """
    cert_path, key_path = directory / CA_FILE, directory / CA_KEY_FILE
    if not cert_path.is_file() or not key_path.is_file():
        msg = f"no plant CA in {directory}; run `linewatch certs init --dir {directory}` first"
        raise ConfigError(msg)
    try:
        certificate = x509.load_pem_x509_certificate(cert_path.read_bytes())
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    except ValueError as exc:
        msg = f"plant CA in {directory}: {CA_FILE} or {CA_KEY_FILE} is not PEM ({exc})"
        raise ConfigError(msg) from exc
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        msg = f"plant CA in {directory}: {CA_KEY_FILE} is not an EC key"
        raise ConfigError(msg)
    return PlantCa(directory, certificate, key)


def _subject_alternative_names(hosts: Sequence[str]) -> x509.SubjectAlternativeName:
    names: list[x509.GeneralName] = []
    for host in dict.fromkeys(hosts):
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    return x509.SubjectAlternativeName(names)


def issue_certificate(
    ca: PlantCa,
    name: str,
    role: Role,
    *,
    hosts: Sequence[str] = (),
    days: int = 365,
) -> IssuedCertificate:
    """Issue a certificate for one identity, written as ``<role>-<name>.pem`` and ``.key``.

    A node's certificate serves TLS for its host names (its name, ``localhost``
    and ``127.0.0.1`` are always included) and identifies it as a client too; every
    other role's is a client certificate.

    Raises:
        ConfigError: a name that is not a plain identifier, or one already issued.
    """
    if not _NAME_PATTERN.match(name):
        msg = f"certificate name {name!r}: use letters, digits, '.', '_' or '-' (max 64)"
        raise ConfigError(msg)
    key = ec.generate_private_key(ec.SECP256R1())
    now = _now()
    usages = [ExtendedKeyUsageOID.CLIENT_AUTH]
    if role in (Role.NODE, Role.COLLECTOR, Role.WEB):
        usages.append(ExtendedKeyUsageOID.SERVER_AUTH)
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, name),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, role.value),
        ]
    )
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca.certificate.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _CLOCK_SKEW)
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.private_key.public_key()),
            critical=False,
        )
        .add_extension(
            _subject_alternative_names([name, *hosts, "localhost", "127.0.0.1"]),
            critical=False,
        )
    )
    certificate = builder.sign(ca.private_key, hashes.SHA256())
    stem = f"{role.value}-{name}"
    cert_path, key_path = ca.directory / f"{stem}.pem", ca.directory / f"{stem}.key"
    if cert_path.exists():
        msg = f"{cert_path} exists; revoke it (`linewatch certs revoke`) before issuing again"
        raise ConfigError(msg)
    _write_new(key_path, _private_bytes(key), 0o600)
    _write_new(cert_path, certificate.public_bytes(serialization.Encoding.PEM), 0o644)
    logger.info(
        "certificate issued name=%s role=%s serial=%x", name, role, certificate.serial_number
    )
    return IssuedCertificate(
        name, role, cert_path, key_path, certificate.serial_number, certificate.not_valid_after_utc
    )


def _write_crl(ca: PlantCa, revoked: Sequence[x509.RevokedCertificate]) -> Path:
    now = _now()
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca.certificate.subject)
        .last_update(now - _CLOCK_SKEW)
        .next_update(now + dt.timedelta(days=30))
    )
    for entry in revoked:
        builder = builder.add_revoked_certificate(entry)
    crl = builder.sign(ca.private_key, hashes.SHA256())
    path = ca.directory / CRL_FILE
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(crl.public_bytes(serialization.Encoding.PEM))
    tmp.replace(path)
    return path


def revoke_certificate(ca: PlantCa, certificate_path: Path) -> Path:
    """Add a certificate to the CA's revocation list and rewrite ``crl.pem``.

    The certificate and its key are renamed ``*.<serial>.revoked`` so that the
    name can be issued again. Nodes reload the list, so a revoked deployer or client is refused on
    its next call.

    Returns:
        The updated CRL's path, to copy to every node.

    Raises:
        ConfigError: the file is not a certificate this CA issued.
    """
    try:
        certificate = x509.load_pem_x509_certificate(certificate_path.read_bytes())
    except (OSError, ValueError) as exc:
        msg = f"{certificate_path}: not a readable PEM certificate ({exc})"
        raise ConfigError(msg) from exc
    if certificate.issuer != ca.certificate.subject:
        msg = f"{certificate_path} was not issued by the plant CA in {ca.directory}"
        raise ConfigError(msg)
    crl_path = ca.directory / CRL_FILE
    current = x509.load_pem_x509_crl(crl_path.read_bytes()) if crl_path.exists() else None
    entries = list(current) if current is not None else []
    if all(e.serial_number != certificate.serial_number for e in entries):
        entries.append(
            x509.RevokedCertificateBuilder()
            .serial_number(certificate.serial_number)
            .revocation_date(_now())
            .build()
        )
    path = _write_crl(ca, entries)
    serial = f"{certificate.serial_number:x}"
    for old in (certificate_path, certificate_path.with_suffix(".key")):
        if old.exists():
            old.rename(old.with_name(f"{old.name}.{serial}.revoked"))
    logger.info("certificate revoked path=%s serial=%s", certificate_path, serial)
    return path
