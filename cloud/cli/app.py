"""The ``linewatch`` Typer application and its one error handler.

Command modules register on ``app``; ``main`` turns a ``LinewatchError`` into one
``error: …`` line on stderr and exit status 1 (``--debug`` shows the traceback).
"""

from __future__ import annotations

import logging
import sys

import typer

from cloud.errors import LinewatchError

__all__ = ["app", "main", "state"]

app = typer.Typer(
    name="linewatch",
    help="Linewatch cloud side: train, evaluate, register, deploy, collect.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

state: dict[str, bool] = {"debug": False}


@app.callback()
def _root(
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks and debug logs."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log progress at INFO."),
) -> None:
    """Linewatch cloud side: learn normal from good parts, flag everything else."""
    state["debug"] = debug
    level = logging.DEBUG if debug else logging.INFO if verbose else logging.WARNING
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``linewatch`` console script."""
    import cloud.cli.commands  # noqa: F401  registers every command on ``app``

    debug = "--debug" in (argv if argv is not None else sys.argv)
    try:
        app(args=argv, standalone_mode=True)
    except LinewatchError as exc:
        if debug:
            raise
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
