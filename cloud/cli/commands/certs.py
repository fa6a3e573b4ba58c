"""``linewatch certs``: the plant CA, one certificate per node, deployer, collector or client."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cloud.cli.app import app

certs_app = typer.Typer(
    help="The plant's certificate authority for mutual TLS (gRPC) and MQTT identities.",
    no_args_is_help=True,
)
app.add_typer(certs_app, name="certs")

_DIR_HELP = "Folder of the plant CA (ca.pem, ca.key, crl.pem and issued certificates)."
_DEFAULT_DIR = Path("keys") / "pki"


@certs_app.command("init")
def certs_init(
    directory: Annotated[Path, typer.Option("--dir", help=_DIR_HELP)] = _DEFAULT_DIR,
    days: Annotated[int, typer.Option("--days", min=1, help="CA validity in days.")] = 3650,
) -> None:
    """Create the plant CA (never overwrites one)."""
    from cloud.pki import init_ca

    ca_path = init_ca(directory, days=days)
    typer.echo(f"plant CA {ca_path}: give it to every node, deployer and collector")
    typer.echo(f"CA key {directory / 'ca.key'} (mode 600): keep it on the cloud, back it up")


@certs_app.command("issue")
def certs_issue(
    node: Annotated[str | None, typer.Option("--node", help="Issue for this node.")] = None,
    deployer: Annotated[
        bool, typer.Option("--deployer", help="Issue the deployer's certificate.")
    ] = False,
    collector: Annotated[
        bool, typer.Option("--collector", help="Issue a collector's certificate.")
    ] = False,
    client: Annotated[
        str | None, typer.Option("--client", help="Issue an inspect-only client's.")
    ] = None,
    web: Annotated[
        str | None, typer.Option("--web", help="Issue the web app's HTTPS certificate.")
    ] = None,
    name: Annotated[
        str | None, typer.Option("--name", help="Name for --deployer or --collector.")
    ] = None,
    hosts: Annotated[
        list[str] | None,
        typer.Option("--host", help="Extra DNS name or IP the node serves on (repeatable)."),
    ] = None,
    days: Annotated[int, typer.Option("--days", min=1, help="Validity in days.")] = 365,
    directory: Annotated[Path, typer.Option("--dir", help=_DIR_HELP)] = _DEFAULT_DIR,
) -> None:
    """Issue one certificate and key signed by the plant CA."""
    from cloud.pki import issue_certificate, load_ca
    from edge.runtime.tls import Role

    chosen = [
        (Role.NODE, node),
        (Role.DEPLOYER, (name or "deployer") if deployer else None),
        (Role.COLLECTOR, (name or "collector") if collector else None),
        (Role.CLIENT, client),
        (Role.WEB, web),
    ]
    picked = [(role, value) for role, value in chosen if value]
    if len(picked) != 1:
        msg = "give exactly one of --node, --deployer, --collector, --client, --web"
        raise typer.BadParameter(msg)
    role, identity = picked[0]
    issued = issue_certificate(load_ca(directory), identity, role, hosts=hosts or (), days=days)
    typer.echo(f"certificate {issued.certificate}")
    typer.echo(f"key         {issued.private_key} (mode 600)")
    typer.echo(f"{role.value} {issued.name}, serial {issued.serial:x}, until {issued.not_after:%F}")


@certs_app.command("revoke")
def certs_revoke(
    certificate: Annotated[Path, typer.Argument(help="The issued certificate's .pem file.")],
    directory: Annotated[Path, typer.Option("--dir", help=_DIR_HELP)] = _DEFAULT_DIR,
) -> None:
    """Revoke a certificate: it is added to crl.pem, which every node must receive."""
    from cloud.pki import load_ca, revoke_certificate

    crl = revoke_certificate(load_ca(directory), certificate)
    typer.echo(f"revoked {certificate}; copy {crl} to every node (--tls-crl)")
