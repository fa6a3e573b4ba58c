"""A real node with mutual TLS on loopback: who gets in, and what each certificate may do.

Certificates come from a real plant CA (``cloud.pki``, as ``linewatch certs`` makes
them); the deployer side is the real ``NodeClient``. Every check is what a user
relies on: a verdict, a status code and its message, a node that will not start.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from grpc_health.v1 import health_pb2, health_pb2_grpc
from linewatch.v1 import common_pb2, inspection_pb2, inspection_pb2_grpc, model_service_pb2
from linewatch.v1 import model_service_pb2_grpc as ms_grpc

from cloud.deploy.pusher import ClientOptions, NodeClient, PackedBundle, pack_bundle
from cloud.errors import NodeRefused, NodeUnreachable
from cloud.pki import PlantCa, init_ca, issue_certificate, load_ca, revoke_certificate
from edge.node import EdgeNode
from edge.runtime.bundle import ModelBundle
from edge.runtime.errors import ConfigError
from edge.runtime.tls import CRL_FILE, Role, TlsFiles, channel_credentials
from edge.settings import EdgeSettings
from tests.plugins.edge import ABNORMAL_GREY, encode_png, grey_image

pytestmark = pytest.mark.integration

_TIMEOUT_S = 10.0


@pytest.fixture
def plant(tmp_path: Path) -> PlantCa:
    init_ca(tmp_path / "pki")
    return load_ca(tmp_path / "pki")


def _files(ca: PlantCa, name: str, role: Role) -> TlsFiles:
    issued = issue_certificate(ca, name, role)
    return TlsFiles(issued.certificate, issued.private_key, ca.certificate_path)


def _node_tls(plant: PlantCa, name: str = "cam-07") -> dict[str, object]:
    node = _files(plant, name, Role.NODE)
    return {
        "insecure": False,
        "tls_cert": node.certificate,
        "tls_key": node.private_key,
        "tls_ca": node.ca,
        "tls_crl": plant.directory / CRL_FILE,
    }


@pytest.fixture
def tls_node(
    model_node_factory: Callable[..., EdgeNode], plant: PlantCa, tiny_bundle: ModelBundle
) -> EdgeNode:
    """A node with mTLS and ModelService, serving the tiny bundle."""
    node = model_node_factory("cam-07", **_node_tls(plant))
    node.load(tiny_bundle)
    return node


@pytest.fixture
def client_files(plant: PlantCa) -> TlsFiles:
    return _files(plant, "mes-1", Role.CLIENT)


@pytest.fixture
def deployer_files(plant: PlantCa) -> TlsFiles:
    return _files(plant, "deployer", Role.DEPLOYER)


def _address(node: EdgeNode, host: str = "127.0.0.1") -> str:
    return f"{host}:{node.port}"


def _channel(node: EdgeNode, files: TlsFiles) -> grpc.Channel:
    return grpc.secure_channel(_address(node), channel_credentials(files))


def _inspect(channel: grpc.Channel) -> inspection_pb2.InspectResponse:
    stub = inspection_pb2_grpc.InspectionServiceStub(channel)
    request = inspection_pb2.InspectRequest(encoded=encode_png(grey_image(ABNORMAL_GREY)))
    return stub.Inspect(request, timeout=_TIMEOUT_S)


def _pack(bundle: ModelBundle) -> PackedBundle:
    return pack_bundle(bundle.directory, bundle.directory.parent / f"{bundle.directory.name}.tar")


def _client(node: EdgeNode, files: TlsFiles, host: str = "127.0.0.1") -> NodeClient:
    options = ClientOptions(timeout_s=_TIMEOUT_S, max_attempts=1, tls=files)
    return NodeClient(_address(node, host), options)


def test_a_plant_certificate_gets_verdicts_and_health(
    tls_node: EdgeNode, client_files: TlsFiles
) -> None:
    with _channel(tls_node, client_files) as channel:
        assert _inspect(channel).verdict == common_pb2.VERDICT_ABNORMAL
        health = health_pb2_grpc.HealthStub(channel)
        reply = health.Check(health_pb2.HealthCheckRequest(), timeout=_TIMEOUT_S)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING


def test_plaintext_is_refused(tls_node: EdgeNode) -> None:
    with grpc.insecure_channel(_address(tls_node)) as channel, pytest.raises(grpc.RpcError) as err:
        _inspect(channel)
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE


def test_a_certificate_from_another_ca_is_refused(tls_node: EdgeNode, tmp_path: Path) -> None:
    init_ca(tmp_path / "rogue")
    rogue = _files(load_ca(tmp_path / "rogue"), "deployer", Role.DEPLOYER)
    # The rogue trusts the real CA, so the node is verified and only the client cert is wrong.
    as_rogue = TlsFiles(rogue.certificate, rogue.private_key, tls_node.settings.tls_ca or rogue.ca)
    with _channel(tls_node, as_rogue) as channel, pytest.raises(grpc.RpcError) as err:
        _inspect(channel)
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE


def test_a_client_certificate_inspects_but_may_not_touch_models(
    tls_node: EdgeNode, client_files: TlsFiles, bundle_maker: Callable[..., ModelBundle]
) -> None:
    with _channel(tls_node, client_files) as channel:
        assert _inspect(channel).verdict == common_pb2.VERDICT_ABNORMAL
    packed = _pack(bundle_maker(version="2"))
    with _client(tls_node, client_files) as client:
        for attempt in (
            client.models,
            lambda: client.activate("tiny", "2"),
            lambda: client.push(packed),
        ):
            with pytest.raises(NodeRefused) as refused:
                attempt()
            assert refused.value.code == "PERMISSION_DENIED"
            assert "'mes-1' (client) may not call /linewatch.v1.ModelService/" in str(refused.value)
    chunk = model_service_pb2.PushChunk(upload_id="x", offset=0, data=b"x", total_size=1)
    with _channel(tls_node, client_files) as channel, pytest.raises(grpc.RpcError) as err:
        ms_grpc.ModelServiceStub(channel).Push(iter([chunk]), timeout=_TIMEOUT_S)
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "linewatch certs issue --deployer" in str(err.value.details())


def test_the_deployer_pushes_and_activates(
    tls_node: EdgeNode, deployer_files: TlsFiles, bundle_maker: Callable[..., ModelBundle]
) -> None:
    bundle = bundle_maker(version="2")
    with _client(tls_node, deployer_files) as client:
        assert not client.push(_pack(bundle)).already_held
        switched = client.activate("tiny", "2")
        assert (switched.active, client.models().active) == ("tiny:2", "tiny:2")


def test_a_revoked_deployer_is_refused_without_a_restart(
    tls_node: EdgeNode, plant: PlantCa, deployer_files: TlsFiles
) -> None:
    with _client(tls_node, deployer_files) as client:
        assert client.models().active == "tiny:1"
        revoke_certificate(plant, deployer_files.certificate)
        with pytest.raises(NodeRefused) as refused:
            client.models()
    assert refused.value.code == "UNAUTHENTICATED"
    assert "'deployer'" in str(refused.value) and "revoked" in str(refused.value)


def _expired(plant: PlantCa, directory: Path) -> TlsFiles:
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, "old"),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "deployer"),
        ]
    )
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(plant.certificate.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=30))
        .not_valid_after(now - dt.timedelta(days=1))
        .sign(plant.private_key, hashes.SHA256())
    )
    cert_path, key_path = directory / "old.pem", directory / "old.key"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return TlsFiles(cert_path, key_path, plant.certificate_path)


def test_an_expired_certificate_is_refused(
    tls_node: EdgeNode, plant: PlantCa, tmp_path: Path
) -> None:
    with _client(tls_node, _expired(plant, tmp_path)) as client, pytest.raises(NodeUnreachable):
        client.models()


def test_a_node_with_an_expired_certificate_does_not_start(
    edge_settings: EdgeSettings, plant: PlantCa, tmp_path: Path
) -> None:
    expired = _expired(plant, tmp_path)
    settings = edge_settings.model_copy(
        update={
            "insecure": False,
            "tls_cert": expired.certificate,
            "tls_key": expired.private_key,
            "tls_ca": expired.ca,
        }
    )
    node = EdgeNode(settings)
    try:
        with pytest.raises(ConfigError, match=r"expired on .*linewatch certs issue --node"):
            node.start()
    finally:
        node.stop(grace_s=0.0)


def test_a_node_address_its_certificate_does_not_name_says_to_add_the_host(
    model_node_factory: Callable[..., EdgeNode], plant: PlantCa, deployer_files: TlsFiles
) -> None:
    node = model_node_factory("cam-08", grpc="127.0.0.2:0", **_node_tls(plant, "cam-08"))
    client = _client(node, deployer_files, host="127.0.0.2")
    with client, pytest.raises(NodeUnreachable) as caught:
        client.models()
    assert "linewatch certs issue --node NAME --host 127.0.0.2" in str(caught.value)


@pytest.fixture
def unstarted() -> Iterator[list[EdgeNode]]:
    nodes: list[EdgeNode] = []
    yield nodes
    for node in nodes:
        node.stop(grace_s=0.0)


def test_a_node_without_certificates_or_insecure_refuses_to_start(
    edge_settings: EdgeSettings, unstarted: list[EdgeNode]
) -> None:
    node = EdgeNode(edge_settings.model_copy(update={"insecure": False, "node": "cam-09"}))
    unstarted.append(node)
    with pytest.raises(ConfigError) as refused:
        node.start()
    message = str(refused.value)
    assert "--tls-cert/--tls-key/--tls-ca" in message
    assert "`linewatch certs issue --node cam-09`" in message and "--insecure" in message
    assert node.server is None


def test_half_a_tls_setup_or_tls_with_insecure_is_refused(
    edge_settings: EdgeSettings, plant: PlantCa, unstarted: list[EdgeNode]
) -> None:
    tls = _node_tls(plant)
    for update, expected in (
        ({"insecure": False, "tls_cert": tls["tls_cert"]}, "missing --tls-key, --tls-ca"),
        ({**tls, "insecure": True}, "--insecure and TLS files both given"),
    ):
        node = EdgeNode(edge_settings.model_copy(update=update))
        unstarted.append(node)
        with pytest.raises(ConfigError, match=expected):
            node.start()


def test_the_deploy_files_health_probes_pass_with_the_nodes_own_certificate(
    tls_node: EdgeNode, tmp_path: Path
) -> None:
    """The Docker HEALTHCHECK and the Kubernetes probes, run against a real mTLS node."""
    yaml = pytest.importorskip("yaml", reason="PyYAML reads deploy/k8s")
    deploy = Path(__file__).resolve().parents[2] / "deploy"
    settings = tls_node.settings
    assert settings.tls_cert and settings.tls_key and settings.tls_ca
    tls_dir = tmp_path / "tls"
    tls_dir.mkdir()
    for name, source in (
        ("node.pem", settings.tls_cert),
        ("node.key", settings.tls_key),
        ("cam-07.pem", settings.tls_cert),
        ("cam-07.key", settings.tls_key),
        ("ca.pem", settings.tls_ca),
    ):
        (tls_dir / name).write_bytes(source.read_bytes())
    docker = (deploy / "docker" / "Dockerfile.edge").read_text()
    healthcheck = docker[docker.index("HEALTHCHECK") :].split("\n\n")[0].replace("\\\n", "")
    probes = [json.loads(healthcheck[healthcheck.index("CMD") + 3 :])]
    daemonset = yaml.safe_load((deploy / "k8s" / "base" / "edge-daemonset.yaml").read_text())
    (edge,) = daemonset["spec"]["template"]["spec"]["containers"]
    probes += [edge[kind]["exec"]["command"] for kind in ("livenessProbe", "readinessProbe")]
    environment = {**os.environ, "NODE_NAME": "cam-07"}
    for command in probes:
        code = command[2].replace("/etc/linewatch/tls/", f"{tls_dir}/")
        code = code.replace("127.0.0.1:50051", _address(tls_node))
        done = subprocess.run(
            [sys.executable, "-c", code, *command[3:]],
            capture_output=True,
            text=True,
            env=environment,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stderr
