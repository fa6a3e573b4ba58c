"""Who may do what on the plant's Mosquitto: a dynamic-security configuration.

Mosquitto's ``acl_file`` checks reads only when it delivers a message, so a node
that joins the collectors' share group receives nothing, yet the broker drops
every message it picks that node for. The dynamic-security plugin also checks
subscriptions and refuses that one. This module writes the plugin's file:

- each node logs in as its own name, with a role that may publish only
  ``alert``, ``sample`` and ``status`` under ``linewatch/+/+/<name>/``, and
  subscribe to nothing;
- collectors may subscribe to ``$share/<group>/linewatch/#`` (and the broker's
  version, the healthcheck), and receive ``linewatch/#``;
- an optional admin may change all of this live (``mosquitto_ctrl dynsec``).

Mosquitto 2.0 does not substitute ``%u`` in these ACLs, hence one role per node.
Passwords are stored as the plugin stores them: PBKDF2-HMAC-SHA512, 12-byte salt.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from cloud.errors import ConfigError
from edge.runtime.mqtt_link import MessageKind

__all__ = [
    "BrokerLogin",
    "LoginRole",
    "check_login_name",
    "dynamic_security_config",
    "node_role",
    "write_dynamic_security",
]

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")  # no '+', '#', '/', '%', spaces
_ITERATIONS = 101  # what ``mosquitto_ctrl dynsec`` uses
_SALT_BYTES = 12
COLLECTOR_ROLE = "linewatch-collector"
ADMIN_ROLE = "linewatch-admin"


class LoginRole(StrEnum):
    """What a login is for."""

    NODE = "node"
    COLLECTOR = "collector"
    ADMIN = "admin"


@dataclass(frozen=True)
class BrokerLogin:
    """One MQTT login: its user name, password and job."""

    username: str
    password: str
    role: LoginRole

    def __post_init__(self) -> None:
        """Refuse names that would widen an ACL (wildcards, levels) and empty passwords."""
        check_login_name(self.username)
        if not self.password:
            msg = f"MQTT login {self.username!r} has an empty password"
            raise ConfigError(msg)


def check_login_name(username: str) -> None:
    """Refuse a login name that would widen the topics it is given.

    Raises:
        ConfigError: wildcards, levels or other characters outside the safe set.
    """
    if not _NAME.match(username):
        msg = (
            f"MQTT login {username!r}: use 1-64 letters, digits, '.', '_' or '-' "
            "(no '+', '#' or '/', which would widen its topics)"
        )
        raise ConfigError(msg)


def node_role(username: str) -> str:
    """The role that lets node ``username`` publish under its own topics only."""
    return f"linewatch-node-{username}"


def dynamic_security_config(
    logins: Sequence[BrokerLogin], *, share_group: str = "linewatch-collectors"
) -> dict[str, Any]:
    """Return the plugin's JSON document for ``logins``.

    Raises:
        ConfigError: a name given twice, or no collector.
    """
    names = [login.username for login in logins]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        msg = f"MQTT logins given more than once: {', '.join(repeated)}"
        raise ConfigError(msg)
    if not any(login.role is LoginRole.COLLECTOR for login in logins):
        msg = "no collector login: nothing could read the nodes' messages (add --collector NAME)"
        raise ConfigError(msg)
    roles = [_collector_role(share_group)]
    if any(login.role is LoginRole.ADMIN for login in logins):
        roles.append(_admin_role())
    clients = []
    for login in logins:
        if login.role is LoginRole.NODE:
            roles.append(_node_role(login.username))
            role = node_role(login.username)
        else:
            role = COLLECTOR_ROLE if login.role is LoginRole.COLLECTOR else ADMIN_ROLE
        clients.append(_client(login, role))
    return {
        "clients": clients,
        "groups": [],
        "roles": roles,
        # Anything not granted above is refused, reads included.
        "defaultACLAccess": {
            "publishClientSend": False,
            "publishClientReceive": False,
            "subscribe": False,
            "unsubscribe": True,
        },
    }


def write_dynamic_security(path: Path, config: dict[str, Any]) -> None:
    """Write ``config`` where the broker reads it, readable by its owner only.

    Raises:
        ConfigError: the file cannot be written.
    """
    temporary = path.with_name(f".{path.name}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            json.dump(config, handle, indent=2)
            handle.write("\n")
        temporary.replace(path)
    except OSError as exc:
        temporary.unlink(missing_ok=True)
        msg = f"cannot write the broker's access file {path} ({exc}); check the folder"
        raise ConfigError(msg) from exc


def _client(login: BrokerLogin, role: str) -> dict[str, Any]:
    salt = os.urandom(_SALT_BYTES)
    digest = hashlib.pbkdf2_hmac("sha512", login.password.encode(), salt, _ITERATIONS)
    return {
        "username": login.username,
        "textName": f"Linewatch {login.role.value}",
        "password": base64.b64encode(digest).decode(),
        "salt": base64.b64encode(salt).decode(),
        "iterations": _ITERATIONS,
        "roles": [{"rolename": role}],
    }


def _acl(acltype: str, topic: str) -> dict[str, Any]:
    return {"acltype": acltype, "topic": topic, "allow": True}


def _node_role(username: str) -> dict[str, Any]:
    return {
        "rolename": node_role(username),
        "acls": [
            _acl("publishClientSend", f"linewatch/+/+/{username}/{kind.value}")
            for kind in MessageKind
        ],
    }


def _collector_role(share_group: str) -> dict[str, Any]:
    return {
        "rolename": COLLECTOR_ROLE,
        "acls": [
            # The plugin matches the filter as sent, share prefix included.
            _acl("subscribeLiteral", f"$share/{share_group}/linewatch/#"),
            _acl("subscribeLiteral", "linewatch/#"),  # a person watching, outside the group
            _acl("publishClientReceive", "linewatch/#"),
            _acl("subscribeLiteral", "$SYS/broker/version"),  # the compose healthcheck
            _acl("publishClientReceive", "$SYS/broker/version"),
        ],
    }


def _admin_role() -> dict[str, Any]:
    control = "$CONTROL/dynamic-security/#"
    return {
        "rolename": ADMIN_ROLE,
        "acls": [
            _acl("publishClientSend", control),
            _acl("publishClientReceive", control),
            _acl("subscribePattern", control),
        ],
    }
