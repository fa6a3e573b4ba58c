"""Who is asking: the session cookie, roles, and CSRF on every state-changing request.

The session (signed by Starlette's SessionMiddleware, HttpOnly, SameSite=Lax,
with an expiry) holds only the user name and a CSRF token; the user is read
from the database on every request, so disabling someone ends their sessions
at once. A state-changing request must echo the token in ``X-CSRF-Token`` (JSON)
or a ``csrf_token`` form field.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Callable, Iterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from cloud.accounts import UserView, get_active_user, role_allows
from cloud.db.models import Role

__all__ = [
    "CSRF_HEADER",
    "CsrfRejected",
    "DbSession",
    "Forbidden",
    "LoginRequired",
    "check_csrf",
    "csrf_token",
    "current_user",
    "db_session",
    "end_session",
    "require",
    "start_session",
]

CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf_token"
_USER_KEY = "user"
_CSRF_KEY = "csrf"


class LoginRequired(Exception):
    """No valid session: pages redirect to the login form, the API answers 401."""


class Forbidden(Exception):
    """Logged in, but the role may not do this: 403."""


class CsrfRejected(Exception):
    """A state-changing request without the session's CSRF token: 403."""


def db_session(request: Request) -> Iterator[Session]:
    """One database session per request, committed when the handler returns."""
    with request.app.state.sessions.begin() as session:
        yield session


def csrf_token(request: Request) -> str:
    """Return the session's CSRF token, making one for a session that has none (login form)."""
    token = request.session.get(_CSRF_KEY)
    if not isinstance(token, str):
        token = secrets.token_urlsafe(32)
        request.session[_CSRF_KEY] = token
    return token


def start_session(request: Request, user: UserView) -> str:
    """Start a fresh session for ``user`` (no fixation); returns its new CSRF token."""
    request.session.clear()
    request.session[_USER_KEY] = user.username
    token = secrets.token_urlsafe(32)
    request.session[_CSRF_KEY] = token
    return token


def end_session(request: Request) -> None:
    """Forget who this browser was."""
    request.session.clear()


DbSession = Annotated[Session, Depends(db_session)]


def current_user(request: Request, session: DbSession) -> UserView:
    """The logged-in, enabled user.

    Raises:
        LoginRequired: no session, an expired one, or its user was disabled.
    """
    username = request.session.get(_USER_KEY)
    user = get_active_user(session, username) if isinstance(username, str) else None
    if user is None:
        request.session.pop(_USER_KEY, None)
        raise LoginRequired
    request.state.user = user
    return user


def require(role: Role) -> Callable[..., UserView]:
    """A dependency that lets through users whose role includes ``role``."""

    def check(user: Annotated[UserView, Depends(current_user)]) -> UserView:
        if not role_allows(user.role, role):
            raise Forbidden
        return user

    return check


async def check_csrf(request: Request) -> None:
    """Refuse a state-changing request whose CSRF token is missing or wrong.

    Raises:
        CsrfRejected: the header or form field does not match the session's token.
    """
    expected = request.session.get(_CSRF_KEY)
    sent = request.headers.get(CSRF_HEADER)
    content_type = request.headers.get("content-type", "")
    if sent is None and content_type.startswith(
        ("application/x-www-form-urlencoded", "multipart/form-data")
    ):
        value = (await request.form()).get(CSRF_FIELD)
        sent = value if isinstance(value, str) else None
    if not isinstance(expected, str) or sent is None or not hmac.compare_digest(sent, expected):
        raise CsrfRejected
