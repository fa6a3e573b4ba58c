"""Shared request plumbing: role-typed users, the CSRF check, and the app's services."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

from fastapi import Depends, Request
from fastapi.templating import Jinja2Templates
from sqlalchemy.orm import Session, sessionmaker

from cloud.accounts import UserView
from cloud.db.models import Role
from cloud.review import SimilarIndex
from cloud.web.auth import check_csrf, current_user, require
from cloud.web.expiring import Expiring
from cloud.web.registry_reader import RegistryReader
from cloud.web.settings import WebSettings

__all__ = ["Admin", "App", "Csrf", "Expert", "Operator", "Services", "User", "services"]


@dataclass
class Services:
    """What every request may use; built once by ``create_app``."""

    settings: WebSettings
    sessions: sessionmaker[Session]
    store_root: Path
    similar: SimilarIndex
    templates: Jinja2Templates
    registry_reader: RegistryReader
    # The score distribution of thousands of reviews moves slowly; redraw it each minute.
    score_chart: Expiring[str] = field(default_factory=lambda: Expiring[str](60.0))


def services(request: Request) -> Services:
    """The app's services."""
    found: Services = request.app.state.services
    return found


User = Annotated[UserView, Depends(current_user)]
Operator = Annotated[UserView, Depends(require(Role.OPERATOR))]
Expert = Annotated[UserView, Depends(require(Role.EXPERT))]
Admin = Annotated[UserView, Depends(require(Role.ADMIN))]
Csrf = Annotated[None, Depends(check_csrf)]
App = Annotated[Services, Depends(services)]
