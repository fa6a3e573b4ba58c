"""``linewatch web``: serve the pages and the JSON API with uvicorn."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer

from cloud.cli.app import app
from cloud.db.migrate import upgrade

DB_HELP = "Database URL (sqlite:///… or postgresql://…). [env LINEWATCH_DB_URL]"

logger = logging.getLogger(__name__)


@app.command()
def web(
    db: Annotated[str | None, typer.Option("--db", help=DB_HELP)] = None,
    store: Annotated[
        Path | None, typer.Option("--store", help="Sample store folder. [env LINEWATCH_STORE_DIR]")
    ] = None,
    listen: Annotated[
        str | None, typer.Option("--listen", help="HOST:PORT. [env LINEWATCH_LISTEN]")
    ] = None,
    tracking_uri: Annotated[
        str | None,
        typer.Option("--tracking-uri", help="MLflow tracking URI, for the Models page."),
    ] = None,
    var_dir: Annotated[
        Path | None,
        typer.Option("--var-dir", help="Where a generated session key is kept. [default var]"),
    ] = None,
    tls_cert: Annotated[
        Path | None, typer.Option("--tls-cert", help="HTTPS certificate. [env LINEWATCH_TLS_CERT]")
    ] = None,
    tls_key: Annotated[
        Path | None, typer.Option("--tls-key", help="Its private key. [env LINEWATCH_TLS_KEY]")
    ] = None,
    insecure: Annotated[
        bool, typer.Option("--insecure", help="Serve plain HTTP (a lab only; logs a warning).")
    ] = False,
) -> None:
    """Serve live alerts, the review queue, nodes and models, and /api/v1, until interrupted."""
    import uvicorn

    from cloud.web.app import create_app
    from cloud.web.settings import listen_address, load_web_settings, tls_files

    settings = load_web_settings(
        db_url=db,
        store_dir=store,
        listen=listen,
        tracking_uri=tracking_uri,
        var_dir=var_dir,
        tls_cert=tls_cert,
        tls_key=tls_key,
        insecure=insecure or None,
    )
    host, port = listen_address(settings.listen)
    files = tls_files(settings)
    if files is None:
        logger.warning("serving plain HTTP (--insecure): passwords and sessions cross unencrypted")
    upgrade(settings.db_url)
    application = create_app(settings)
    scheme = "http" if files is None else "https"
    where = settings.db_url.split("@")[-1]
    typer.echo(f"serving {scheme}://{host}:{port}/ on {where}", err=True)
    uvicorn.run(
        application,
        host=host,
        port=port,
        log_level="warning",
        proxy_headers=False,
        ssl_certfile=str(files[0]) if files else None,
        ssl_keyfile=str(files[1]) if files else None,
    )
