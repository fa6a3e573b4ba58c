"""Users: add, list, disable, and check a password (argon2 through pwdlib).

A wrong user name and a wrong password fail the same way and take about the
same time (an unknown name is checked against a dummy hash), so a login page
never tells an attacker which names exist. The caller owns the transaction.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import datetime

from pwdlib import PasswordHash
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from cloud.db.models import Role, User, utc_now
from cloud.errors import LinewatchError

__all__ = [
    "MIN_PASSWORD_LENGTH",
    "AccountError",
    "UserView",
    "add_user",
    "authenticate",
    "get_active_user",
    "list_users",
    "role_allows",
    "set_disabled",
]

logger = logging.getLogger(__name__)

MIN_PASSWORD_LENGTH = 8
_USERNAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_ROLE_RANK = {Role.OPERATOR: 0, Role.EXPERT: 1, Role.ADMIN: 2}
_hasher = PasswordHash.recommended()
_DUMMY_HASH = _hasher.hash("linewatch-dummy-password")


class AccountError(LinewatchError):
    """A user that cannot be added or changed: bad name, short password, exists, unknown."""


@dataclass(frozen=True)
class UserView:
    """A user without the password hash: safe to show and to keep in a request."""

    username: str
    role: Role
    disabled: bool
    created_at: datetime


def _view(user: User) -> UserView:
    return UserView(user.username, Role(user.role), user.disabled, user.created_at)


def role_allows(role: Role, needed: Role) -> bool:
    """True when ``role`` may do what ``needed`` may (admin ⊇ expert ⊇ operator)."""
    return _ROLE_RANK[role] >= _ROLE_RANK[needed]


def add_user(session: Session, username: str, password: str, role: Role) -> UserView:
    """Create a user with an argon2 hash of ``password``.

    Raises:
        AccountError: the name is not allowed or taken, or the password is too short.
    """
    if not _USERNAME.match(username):
        msg = (
            f"user name {username!r}: use 1-64 letters, digits, '_', '.' or '-', "
            "starting with a letter or digit"
        )
        raise AccountError(msg)
    if len(password) < MIN_PASSWORD_LENGTH:
        msg = f"user {username}: password too short; use at least {MIN_PASSWORD_LENGTH} characters"
        raise AccountError(msg)
    user = User(
        username=username,
        password_hash=_hasher.hash(password),
        role=role.value,
        disabled=False,
        created_at=utc_now(),
    )
    session.add(user)
    try:
        session.flush()
    except IntegrityError as exc:
        session.rollback()
        msg = f"user {username} exists; pick another name or `linewatch users disable` it"
        raise AccountError(msg) from exc
    logger.info("user added user=%s role=%s", username, role.value)
    return _view(user)


def list_users(session: Session) -> list[UserView]:
    """Return every user, by name."""
    return [_view(user) for user in session.scalars(select(User).order_by(User.username))]


def set_disabled(session: Session, username: str, *, disabled: bool = True) -> UserView:
    """Disable (or enable again) a user: a disabled user's sessions stop working at once.

    Raises:
        AccountError: no such user.
    """
    user = session.scalars(select(User).where(User.username == username)).one_or_none()
    if user is None:
        msg = f"user {username}: no such user; see `linewatch users list`"
        raise AccountError(msg)
    user.disabled = disabled
    logger.info("user %s user=%s", "disabled" if disabled else "enabled", username)
    return _view(user)


def get_active_user(session: Session, username: str) -> UserView | None:
    """Return the user if it exists and is not disabled."""
    user = session.scalars(select(User).where(User.username == username)).one_or_none()
    return None if user is None or user.disabled else _view(user)


def authenticate(session: Session, username: str, password: str) -> UserView | None:
    """Return the user when the name and password match an enabled user, else None."""
    user = session.scalars(select(User).where(User.username == username)).one_or_none()
    if user is None:
        _hasher.verify(password, _DUMMY_HASH)  # same work as a real check
        return None
    if not _hasher.verify(password, user.password_hash) or user.disabled:
        return None
    return _view(user)
