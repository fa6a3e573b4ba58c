"""``linewatch broker access``: the plant broker's logins and what each may do.

Writes the Mosquitto dynamic-security file (``cloud.broker_access``): one login
per node that may publish only under its own topics, collectors that may join
the share group, an optional admin for live changes. Passwords come from the
environment (``LINEWATCH_MQTT_PASSWORD_<NAME>``, the name upper-cased with other
characters as ``_``), never from flags, so they stay out of shell history.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated

import typer

from cloud.broker_access import (
    BrokerLogin,
    LoginRole,
    check_login_name,
    dynamic_security_config,
    write_dynamic_security,
)
from cloud.cli.app import app
from cloud.errors import ConfigError

broker_app = typer.Typer(help="The plant's MQTT broker.", no_args_is_help=True)
app.add_typer(broker_app, name="broker")


def password_variable(username: str) -> str:
    """The environment variable that holds ``username``'s password."""
    return "LINEWATCH_MQTT_PASSWORD_" + re.sub(r"[^A-Za-z0-9]", "_", username).upper()


def _login(username: str, role: LoginRole) -> BrokerLogin:
    check_login_name(username)
    variable = password_variable(username)
    password = os.environ.get(variable, "")
    if not password:
        msg = f"no password for MQTT login {username!r}: set {variable}"
        raise ConfigError(msg)
    return BrokerLogin(username, password, role)


@broker_app.command("access")
def broker_access(
    out: Annotated[
        Path,
        typer.Option(help="The dynamic-security file to write (plugin_opt_config_file)."),
    ],
    node: Annotated[
        list[str], typer.Option(help="A node's login, named as the node; repeat per node.")
    ],
    collector: Annotated[
        list[str], typer.Option(help="A collector's login; repeat for several.")
    ] = ["collector"],  # noqa: B006  typer reads list defaults
    admin: Annotated[
        str | None, typer.Option(help="An admin login for `mosquitto_ctrl dynsec` changes.")
    ] = None,
    share_group: Annotated[
        str, typer.Option(help="The collectors' share group.")
    ] = "linewatch-collectors",
) -> None:
    """Write the broker's logins and ACLs: each node publishes under its own topics only.

    Unlike an acl_file, the plugin refuses a node that tries to subscribe (to the
    collectors' share group, say). Restart the broker, or use ``mosquitto_ctrl``
    with the admin login, to apply it.
    """
    logins = [_login(name, LoginRole.NODE) for name in node]
    logins += [_login(name, LoginRole.COLLECTOR) for name in collector]
    if admin is not None:
        logins.append(_login(admin, LoginRole.ADMIN))
    config = dynamic_security_config(logins, share_group=share_group)
    write_dynamic_security(out, config)
    typer.echo(
        f"wrote {out}: {len(node)} node(s), {len(collector)} collector(s)"
        + (", 1 admin" if admin else "")
        + "; nodes may publish only under linewatch/+/+/<their name>/ and subscribe to nothing"
    )
