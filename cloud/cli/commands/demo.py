"""linewatch demo: the whole system on one machine."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cloud.cli.app import app


@app.command()
def demo(
    workdir: Annotated[
        Path, typer.Option(help="Where the demo keeps data, models, database and logs.")
    ] = Path("var/demo"),
    duration: Annotated[
        float, typer.Option(min=0.0, help="Seconds to watch the line; 0: until Ctrl-C.")
    ] = 60.0,
    category: Annotated[str, typer.Option(help="Synthetic part surface.")] = "metal",
) -> None:
    """Start a broker, the collector and two edge nodes; train, register, promote, deploy; watch.

    Everything the demo starts is stopped when it ends or on Ctrl-C.
    """
    from cloud.demo import DemoSettings, run_demo

    run_demo(DemoSettings(workdir=workdir, duration_s=duration, category=category), typer.echo)
