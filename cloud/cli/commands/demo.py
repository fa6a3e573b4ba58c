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
    after: Annotated[
        float,
        typer.Option(
            min=0.0,
            help="Seconds to watch the line again once the reviewed samples have been "
            "retrained on and version 2 rolled out; 0: stop after the first watch.",
        ),
    ] = 30.0,
    category: Annotated[str, typer.Option(help="Synthetic part surface.")] = "metal",
) -> None:
    """Start a broker, the collector and two edge nodes; train, register, promote, deploy; watch.

    Then close the loop: a simulated reviewer labels the collected samples from the
    synthetic line's truth, `linewatch retrain --promote` makes version 2, the deployer
    rolls it out, and a second watch gives false alarms and misses before and after.
    Everything the demo starts is stopped when it ends or on Ctrl-C.
    """
    from cloud.demo import DemoSettings, run_demo

    run_demo(
        DemoSettings(workdir=workdir, duration_s=duration, after_s=after, category=category),
        typer.echo,
    )
