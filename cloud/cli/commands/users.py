"""``linewatch users add|list|disable|enable``: the web app's local users.

The password comes from ``$LINEWATCH_PASSWORD`` when set (scripts), else from a
hidden prompt asked twice; it is never a flag, so it stays out of shell history.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Annotated, TypeVar

import typer
from pydantic import ValidationError
from sqlalchemy.orm import Session

from cloud.accounts import AccountSettings, UserView, add_user, list_users, set_disabled
from cloud.cli.app import app
from cloud.db.migrate import upgrade
from cloud.db.models import Role
from cloud.db.session import make_engine, make_session_factory
from cloud.errors import ConfigError

_T = TypeVar("_T")

users_app = typer.Typer(help="People who may use the web app.", no_args_is_help=True)
app.add_typer(users_app, name="users")

DB_HELP = "Database URL (sqlite:///… or postgresql://…). [env LINEWATCH_DB_URL]"


def _settings(db: str | None) -> AccountSettings:
    try:
        return AccountSettings() if db is None else AccountSettings(db_url=db)
    except ValidationError as exc:
        first = exc.errors()[0]
        msg = f"setting {'.'.join(map(str, first['loc']))}: {first['msg']}"
        raise ConfigError(msg) from exc


def _write(settings: AccountSettings, change: Callable[[Session], _T]) -> _T:
    """Run ``change`` in one committed transaction on the migrated database."""
    upgrade(settings.db_url)
    engine = make_engine(settings.db_url)
    try:
        with make_session_factory(engine).begin() as session:
            return change(session)
    finally:
        engine.dispose()


def _line(user: UserView) -> str:
    state = "disabled" if user.disabled else "active"
    return f"{user.username:<24} {user.role.value:<9} {state:<9} {user.created_at:%Y-%m-%d %H:%M}"


@users_app.command("add")
def users_add(
    name: Annotated[str, typer.Argument(help="Login name.")],
    role: Annotated[Role, typer.Option("--role", help="operator, expert or admin.")],
    db: Annotated[str | None, typer.Option("--db", help=DB_HELP)] = None,
) -> None:
    """Add a user; the password is read from LINEWATCH_PASSWORD or a hidden prompt."""
    settings = _settings(db)
    if settings.password is not None:
        password = settings.password.get_secret_value()
    else:
        password = typer.prompt(
            f"password for {name}", hide_input=True, confirmation_prompt=True, err=True
        )
    user = _write(settings, lambda session: add_user(session, name, password, role))
    typer.echo(f"added {user.username} as {user.role.value}")


@users_app.command("list")
def users_list(
    db: Annotated[str | None, typer.Option("--db", help=DB_HELP)] = None,
    as_json: Annotated[bool, typer.Option("--json", help="A JSON list of objects.")] = False,
) -> None:
    """List users with their role and whether they may log in."""
    users = _write(_settings(db), list_users)
    if as_json:
        rows = [
            {
                "username": u.username,
                "role": u.role.value,
                "disabled": u.disabled,
                "created_at": u.created_at.isoformat(),
            }
            for u in users
        ]
        typer.echo(json.dumps(rows, indent=2))
        return
    for user in users:
        typer.echo(_line(user))
    typer.echo(f"{len(users)} user(s)", err=True)


@users_app.command("disable")
def users_disable(
    name: Annotated[str, typer.Argument(help="Login name.")],
    db: Annotated[str | None, typer.Option("--db", help=DB_HELP)] = None,
) -> None:
    """Stop a user from logging in; their open sessions stop working too."""
    user = _write(_settings(db), lambda session: set_disabled(session, name, disabled=True))
    typer.echo(f"disabled {user.username}")


@users_app.command("enable")
def users_enable(
    name: Annotated[str, typer.Argument(help="Login name.")],
    db: Annotated[str | None, typer.Option("--db", help=DB_HELP)] = None,
) -> None:
    """Let a disabled user log in again."""
    user = _write(_settings(db), lambda session: set_disabled(session, name, disabled=False))
    typer.echo(f"enabled {user.username}")
