"""The broker's access file: names that cannot widen an ACL, and per-node password files."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

import pytest

from cloud.broker_access import BrokerLogin, LoginRole, dynamic_security_config
from edge.runtime.errors import ConfigError
from edge.settings import EdgeSettings


@pytest.mark.parametrize("name", ["cam/07", "cam+", "#", "", "cam 07", "%u", "x" * 65])
def test_names_that_would_widen_a_topic_are_refused(name: str) -> None:
    with pytest.raises(ConfigError, match="MQTT login"):
        BrokerLogin(name, "pw", LoginRole.NODE)


def test_each_node_may_publish_only_its_own_kinds_and_hashes_check_out() -> None:
    config = dynamic_security_config(
        [
            BrokerLogin("cam-07", "pw-07", LoginRole.NODE),
            BrokerLogin("c", "pw", LoginRole.COLLECTOR),
        ]
    )
    roles = {role["rolename"]: role["acls"] for role in config["roles"]}
    node_acls = roles["linewatch-node-cam-07"]
    assert {acl["acltype"] for acl in node_acls} == {"publishClientSend"}
    assert sorted(acl["topic"] for acl in node_acls) == [
        "linewatch/+/+/cam-07/alert",
        "linewatch/+/+/cam-07/sample",
        "linewatch/+/+/cam-07/status",
    ]
    assert config["defaultACLAccess"]["subscribe"] is False
    client = next(c for c in config["clients"] if c["username"] == "cam-07")
    digest = hashlib.pbkdf2_hmac(
        "sha512", b"pw-07", base64.b64decode(client["salt"]), client["iterations"]
    )
    assert base64.b64encode(digest).decode() == client["password"]


def test_a_name_twice_or_no_collector_is_refused() -> None:
    node = BrokerLogin("cam-07", "pw", LoginRole.NODE)
    with pytest.raises(ConfigError, match="more than once: cam-07"):
        dynamic_security_config([node, node, BrokerLogin("c", "pw", LoginRole.COLLECTOR)])
    with pytest.raises(ConfigError, match="no collector"):
        dynamic_security_config([node])


def test_a_node_reads_its_mqtt_password_from_a_file(tmp_path: Path) -> None:
    secret = tmp_path / "cam-07"
    secret.write_text("s3cret\n")
    assert EdgeSettings(mqtt_password_file=secret).mqtt_login_password() == "s3cret"
    assert EdgeSettings(mqtt_password="inline").mqtt_login_password() == "inline"
    with pytest.raises(ConfigError, match="not both"):
        EdgeSettings(mqtt_password="x", mqtt_password_file=secret).mqtt_login_password()
    with pytest.raises(ConfigError, match="key named after this node"):
        EdgeSettings(mqtt_password_file=tmp_path / "missing").mqtt_login_password()
    (tmp_path / "empty").write_text("\n")
    with pytest.raises(ConfigError, match="is empty"):
        EdgeSettings(mqtt_password_file=tmp_path / "empty").mqtt_login_password()
