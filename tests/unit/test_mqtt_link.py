"""The MQTT link node and collector share: broker URLs, topics, verdict codes, the client."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from linewatch.v1 import common_pb2

from edge.runtime.errors import ConfigError
from edge.runtime.mqtt_link import (
    TOPIC_FILTER,
    BrokerAddress,
    MessageKind,
    NodeIdentity,
    Topic,
    build_client,
    parse_topic,
    shared_subscription,
    topic_for,
)
from edge.runtime.policy import Verdict
from edge.runtime.verdict_codes import verdict_from_proto, verdict_to_proto

PASSWORD = "hunter2"
NODE = NodeIdentity(site="plant1", line="line2", node="cam3")


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("mqtt://broker.plant", BrokerAddress("broker.plant", 1883, tls=False)),
        ("mqtts://broker.plant", BrokerAddress("broker.plant", 8883, tls=True)),
        ("mqtt://127.0.0.1:1884", BrokerAddress("127.0.0.1", 1884, tls=False)),
        (
            f"mqtts://cam3:{PASSWORD}@broker.plant:9883",
            BrokerAddress("broker.plant", 9883, tls=True, username="cam3", password=PASSWORD),
        ),
        ("mqtt://cam3@broker.plant", BrokerAddress("broker.plant", 1883, False, "cam3")),
    ],
)
def test_a_broker_url_gives_host_port_tls_and_credentials(
    url: str, expected: BrokerAddress
) -> None:
    assert BrokerAddress.from_url(url) == expected


def test_the_displayed_address_keeps_the_user_and_hides_the_password() -> None:
    address = BrokerAddress.from_url(f"mqtts://cam3:{PASSWORD}@broker.plant:8883")
    assert address.display == "mqtts://cam3@broker.plant:8883"
    assert PASSWORD not in repr(address)


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        (f"mqtt://cam3:{PASSWORD}@broker.plant:99999", "port"),
        (f"mqtt://cam3:{PASSWORD}@broker.plant:eighty", "port"),
        (f"http://cam3:{PASSWORD}@broker.plant:8883", "expected mqtt://"),
        (f"mqtt://cam3:{PASSWORD}@", "expected mqtt://"),
        ("broker.plant:1883", "expected mqtt://"),
    ],
)
def test_a_bad_url_is_refused_without_showing_the_password(url: str, problem: str) -> None:
    with pytest.raises(ConfigError) as caught:
        BrokerAddress.from_url(url)
    message = str(caught.value)
    assert problem in message
    assert "--mqtt" in message
    assert PASSWORD not in message
    assert "cam3" not in message


def test_credentials_given_apart_from_the_url_take_precedence() -> None:
    address = BrokerAddress.from_url(f"mqtt://cam3:{PASSWORD}@broker.plant")
    assert address.with_credentials(None, None) == address
    changed = address.with_credentials("cam9", "s3cret")
    assert (changed.username, changed.password) == ("cam9", "s3cret")
    assert address.with_credentials(None, "s3cret").username == "cam3"


@pytest.mark.parametrize("kind", list(MessageKind))
def test_a_topic_round_trips_through_build_and_parse(kind: MessageKind) -> None:
    topic = topic_for(NODE, kind)
    assert topic == f"linewatch/plant1/line2/cam3/{kind.value}"
    assert parse_topic(topic) == Topic(NODE, kind)


@pytest.mark.parametrize(
    ("topic", "reason"),
    [
        ("linewatch/plant1/line2/sample", "topic is not"),
        ("linewatch/plant1/line2/cam3/sample/extra", "topic is not"),
        ("linewatch/plant1//cam3/sample", "topic is not"),
        ("other/plant1/line2/cam3/sample", "topic is not"),
        ("linewatch/plant1/line2/cam3/heartbeat", "unknown message kind 'heartbeat'"),
    ],
)
def test_a_topic_outside_the_layout_is_refused_with_a_reason(topic: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        parse_topic(topic)


def test_the_collectors_subscribe_to_every_node_topic_in_their_share_group() -> None:
    assert TOPIC_FILTER == "linewatch/+/+/+/+"
    assert shared_subscription("linewatch-collectors") == "$share/linewatch-collectors/" + (
        TOPIC_FILTER
    )


@pytest.mark.parametrize("verdict", list(Verdict))
def test_every_verdict_round_trips_through_its_protobuf_code(verdict: Verdict) -> None:
    code = verdict_to_proto(verdict)
    assert code != common_pb2.VERDICT_UNSPECIFIED
    assert verdict_from_proto(code) is verdict


def test_verdict_codes_match_the_contract_and_unknown_codes_have_no_verdict() -> None:
    assert verdict_to_proto(Verdict.ABNORMAL) == common_pb2.VERDICT_ABNORMAL
    assert verdict_from_proto(common_pb2.VERDICT_UNSPECIFIED) is None
    assert verdict_from_proto(99) is None


def test_the_client_builder_turns_tls_on_for_mqtts_only() -> None:
    plain = build_client("node-1", BrokerAddress.from_url("mqtt://broker.plant"))
    secure = build_client("node-1", BrokerAddress.from_url("mqtts://broker.plant"))
    # paho has no public getter for its TLS context; the attribute is what connect() uses.
    assert plain._ssl_context is None
    assert secure._ssl_context is not None


def test_a_ca_file_turns_tls_on_and_credentials_reach_the_client(ca_file: Path) -> None:
    address = BrokerAddress.from_url(f"mqtt://cam3:{PASSWORD}@broker.plant")
    client = build_client("collector-1", address, tls_ca=ca_file, manual_ack=True)
    assert client._ssl_context is not None
    assert (client.username, client.password) == ("cam3", PASSWORD)


@pytest.fixture
def ca_file(tmp_path: Path) -> Path:
    """A self-signed CA certificate in PEM, made on the spot (nothing committed)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Plant CA")])
    now = dt.datetime.now(dt.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    path = tmp_path / "ca.pem"
    path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    return path
