"""The plant CA and mutual TLS on a real gRPC server on loopback.

Certificates are issued by ``cloud.pki`` as ``linewatch certs`` does; the server and
client load them with ``edge.runtime.tls`` exactly as node and deployer do.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from cloud.errors import ConfigError
from cloud.pki import PlantCa, init_ca, issue_certificate, load_ca, revoke_certificate
from edge.runtime.tls import (
    CRL_FILE,
    RevocationList,
    Role,
    TlsFiles,
    channel_credentials,
    peer_identity,
    server_credentials,
)

pytestmark = pytest.mark.integration

_METHOD = "/test.Whoami/Ask"


@pytest.fixture
def plant(tmp_path: Path) -> PlantCa:
    init_ca(tmp_path / "pki")
    return load_ca(tmp_path / "pki")


def _files(ca: PlantCa, name: str, role: Role) -> TlsFiles:
    issued = issue_certificate(ca, name, role)
    return TlsFiles(issued.certificate, issued.private_key, ca.certificate_path)


def _whoami(request: bytes, context: grpc.ServicerContext) -> bytes:
    peer = peer_identity(context)
    assert peer is not None
    return f"{peer.name}/{peer.role}/{peer.serial}".encode()


@pytest.fixture
def server(plant: PlantCa) -> Iterator[int]:
    handler = grpc.method_handlers_generic_handler(
        "test.Whoami", {"Ask": grpc.unary_unary_rpc_method_handler(_whoami)}
    )
    srv = grpc.server(futures.ThreadPoolExecutor(max_workers=2), handlers=[handler])
    port = srv.add_secure_port(
        "127.0.0.1:0", server_credentials(_files(plant, "cam-07", Role.NODE))
    )
    srv.start()
    yield port
    srv.stop(grace=None).wait()


def _ask(port: int, files: TlsFiles) -> str:
    with grpc.secure_channel(f"127.0.0.1:{port}", channel_credentials(files)) as channel:
        answer = channel.unary_unary(_METHOD)(b"", timeout=5.0)
    return bytes(answer).decode()


def test_a_client_from_the_plant_ca_is_told_apart_by_role(plant: PlantCa, server: int) -> None:
    name, role, _ = _ask(server, _files(plant, "deployer", Role.DEPLOYER)).split("/")
    assert (name, role) == ("deployer", "deployer")
    name, role, _ = _ask(server, _files(plant, "mes-1", Role.CLIENT)).split("/")
    assert (name, role) == ("mes-1", "client")


def test_a_certificate_from_another_ca_is_refused(tmp_path: Path, server: int) -> None:
    init_ca(tmp_path / "rogue")
    rogue = load_ca(tmp_path / "rogue")
    with pytest.raises(grpc.RpcError) as caught:
        _ask(server, _files(rogue, "deployer", Role.DEPLOYER))
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE


def test_plaintext_is_refused(server: int) -> None:
    with grpc.insecure_channel(f"127.0.0.1:{server}") as channel, pytest.raises(grpc.RpcError):
        channel.unary_unary(_METHOD)(b"", timeout=2.0)


def test_an_expired_certificate_is_refused(plant: PlantCa, server: int, tmp_path: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, "old"),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "deployer"),
        ]
    )
    expired = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(plant.certificate.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=30))
        .not_valid_after(now - dt.timedelta(days=1))
        .sign(plant.private_key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "old.pem", tmp_path / "old.key"
    cert_path.write_bytes(expired.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    with pytest.raises(grpc.RpcError):
        _ask(server, TlsFiles(cert_path, key_path, plant.certificate_path))


def test_revocation_reaches_a_running_reader(plant: PlantCa) -> None:
    issued = issue_certificate(plant, "laptop", Role.DEPLOYER)
    revoked = RevocationList(plant.directory / CRL_FILE, plant.certificate_path)
    assert not revoked.is_revoked(issued.serial)
    revoke_certificate(plant, issued.certificate)
    assert revoked.is_revoked(issued.serial)
    assert not issued.certificate.exists()
    again = issue_certificate(plant, "laptop", Role.DEPLOYER)
    assert not revoked.is_revoked(again.serial)


def test_a_forged_revocation_list_is_not_believed(plant: PlantCa, tmp_path: Path) -> None:
    init_ca(tmp_path / "rogue")
    rogue = load_ca(tmp_path / "rogue")
    reader = RevocationList(rogue.directory / CRL_FILE, plant.certificate_path)
    with pytest.raises(ConfigError, match="not signed by the plant CA"):
        reader.is_revoked(1)


def test_nothing_is_overwritten(plant: PlantCa) -> None:
    with pytest.raises(ConfigError, match="already holds a CA"):
        init_ca(plant.directory)
    issue_certificate(plant, "cam-07", Role.NODE)
    with pytest.raises(ConfigError, match="revoke it"):
        issue_certificate(plant, "cam-07", Role.NODE)
    with pytest.raises(ConfigError, match="use letters"):
        issue_certificate(plant, "../etc", Role.NODE)
    assert (plant.directory / "ca.key").stat().st_mode & 0o077 == 0
