"""The MQTT link that nodes and collectors share: who speaks, on which topic, to which broker.

A node publishes and a collector subscribes; both must agree on the topic layout
``linewatch/<site>/<line>/<node>/<kind>``, on what a broker URL means, and on
how a paho client is set up (MQTT 5, credentials, TLS, reconnect backoff). Each of
these lives here once, so the two ends cannot drift apart; each side then adds its
own callbacks, last will and session options to the client it gets.

paho is imported only when a client is built: the database layer, the web app and
a node without a broker use the identity and topic types without loading it.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from edge.runtime.errors import ConfigError

if TYPE_CHECKING:
    import paho.mqtt.client as mqtt

__all__ = [
    "TOPIC_FILTER",
    "TOPIC_ROOT",
    "BrokerAddress",
    "MessageKind",
    "NodeIdentity",
    "Topic",
    "build_client",
    "parse_topic",
    "shared_subscription",
    "topic_for",
]

TOPIC_ROOT = "linewatch"
TOPIC_FILTER = f"{TOPIC_ROOT}/+/+/+/+"  # every kind from every node
_DEFAULT_PORTS = {"mqtt": 1883, "mqtts": 8883}
_TOPIC_LAYOUT = f"{TOPIC_ROOT}/<site>/<line>/<node>/<kind>"


@dataclass(frozen=True)
class NodeIdentity:
    """Where a node stands: it names the node's topics and its row in the database."""

    site: str
    line: str
    node: str


class MessageKind(StrEnum):
    """What a message on a node's topic carries; the last topic segment."""

    ALERT = "alert"
    SAMPLE = "sample"
    STATUS = "status"


@dataclass(frozen=True)
class Topic:
    """A parsed node topic: who sent the message and what kind it is."""

    node: NodeIdentity
    kind: MessageKind


def topic_for(identity: NodeIdentity, kind: MessageKind) -> str:
    """Return ``linewatch/<site>/<line>/<node>/<kind>``, the topic one node publishes on.

    Args:
        identity: the node; the broker lets it publish only under its own topics.
        kind: alert, sample or status.
    """
    return f"{TOPIC_ROOT}/{identity.site}/{identity.line}/{identity.node}/{kind}"


def parse_topic(topic: str) -> Topic:
    """Read the sender and kind from a received topic, so a payload can be checked against it.

    Args:
        topic: the topic a message arrived on.

    Raises:
        ValueError: the topic is not ``linewatch/<site>/<line>/<node>/<kind>`` with a
            known kind; the message says which, for the collector's rejection reason.
    """
    parts = topic.split("/")
    if len(parts) != 5 or parts[0] != TOPIC_ROOT or not all(parts[1:4]):
        msg = f"topic is not {_TOPIC_LAYOUT}"
        raise ValueError(msg)
    try:
        kind = MessageKind(parts[4])
    except ValueError:
        msg = f"unknown message kind {parts[4]!r}; expected alert, sample or status"
        raise ValueError(msg) from None
    return Topic(NodeIdentity(parts[1], parts[2], parts[3]), kind)


def shared_subscription(group: str) -> str:
    """Return ``$share/<group>/linewatch/+/+/+/+`` so that collectors of one group split the stream.

    Args:
        group: the share group; every collector of one deployment uses the same one.
    """
    return f"$share/{group}/{TOPIC_FILTER}"


@dataclass(frozen=True)
class BrokerAddress:
    """Where the broker listens, and the credentials a URL may carry (never shown)."""

    host: str
    port: int
    tls: bool
    username: str | None = None
    password: str | None = field(default=None, repr=False)

    @property
    def display(self) -> str:
        """The URL without its password, for logs and the console."""
        user = f"{self.username}@" if self.username else ""
        return f"{'mqtts' if self.tls else 'mqtt'}://{user}{self.host}:{self.port}"

    @classmethod
    def from_url(cls, url: str) -> BrokerAddress:
        """Parse ``mqtt://[user:password@]host[:port]`` or ``mqtts://…`` (1883 and 8883 default).

        Args:
            url: the broker URL as a person typed it; ``mqtts`` turns TLS on.

        Raises:
            ConfigError: not an MQTT URL with a host, or a port outside 1-65535; the
                message shows the URL without its user and password.
        """
        parts = urlsplit(url)
        try:
            port = parts.port
        except ValueError:
            port = -1
        problem = ""
        if parts.scheme not in _DEFAULT_PORTS or not parts.hostname:
            problem = "expected mqtt://host:port or mqtts://host:port"
        elif port == -1:
            problem = "the port is not a number in 1-65535"
        if problem:
            shown = parts._replace(netloc=parts.netloc.rpartition("@")[2]).geturl()
            msg = f"MQTT URL {shown!r}: {problem}; fix --mqtt or LINEWATCH_MQTT_URL"
            raise ConfigError(msg)
        return cls(
            parts.hostname or "",
            port or _DEFAULT_PORTS[parts.scheme],
            parts.scheme == "mqtts",
            username=parts.username,
            password=parts.password,
        )

    def with_credentials(self, username: str | None, password: str | None) -> BrokerAddress:
        """Return this address with the credentials given apart from the URL taking precedence.

        Args:
            username: a user from a flag or the environment; None keeps the URL's.
            password: a password from a flag or the environment; None keeps the URL's.
        """
        return replace(self, username=username or self.username, password=password or self.password)


def build_client(
    client_id: str,
    address: BrokerAddress,
    *,
    tls_ca: Path | None = None,
    manual_ack: bool = False,
    reconnect_min_delay_s: int = 1,
    reconnect_max_delay_s: int = 30,
) -> mqtt.Client:
    """Return an MQTT 5 paho client set up for the broker, not yet connected.

    The caller adds its callbacks (and a node its last will) before connecting.

    Args:
        client_id: the session's name at the broker; a fixed one keeps a persistent session.
        address: host, port, TLS and credentials (a user without a password is allowed).
        tls_ca: a CA bundle to verify the broker with; it turns TLS on even for ``mqtt://``.
            Without it, TLS verifies against the system's CAs.
        manual_ack: hold each PUBACK until the caller calls ``client.ack`` (the collector
            acknowledges only what it has committed).
        reconnect_min_delay_s: paho's first reconnect delay.
        reconnect_max_delay_s: the delay paho's backoff doubles up to.
    """
    import paho.mqtt.client as mqtt  # here, not at the top: see the module docstring
    from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

    client = mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id=client_id,
        protocol=MQTTProtocolVersion.MQTTv5,
        manual_ack=manual_ack,
    )
    if address.username:
        client.username_pw_set(address.username, address.password)
    if address.tls or tls_ca is not None:
        client.tls_set(ca_certs=str(tls_ca) if tls_ca is not None else None)
    client.reconnect_delay_set(reconnect_min_delay_s, reconnect_max_delay_s)
    return client
