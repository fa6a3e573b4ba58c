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
) -> None:
    """Serve live alerts, the review queue, nodes and models, and /api/v1, until interrupted."""
    import uvicorn

    from cloud.web.app import create_app
    from cloud.web.settings import listen_address, load_web_settings

    settings = load_web_settings(
        db_url=db, store_dir=store, listen=listen, tracking_uri=tracking_uri, var_dir=var_dir
    )
    host, port = listen_address(settings.listen)
    upgrade(settings.db_url)
    application = create_app(settings)
    typer.echo(f"serving http://{host}:{port}/ on {settings.db_url.split('@')[-1]}", err=True)
    uvicorn.run(application, host=host, port=port, log_level="warning", proxy_headers=False)
