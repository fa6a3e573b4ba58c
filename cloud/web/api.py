"""The JSON API under ``/api/v1``: what the pages use, documented by OpenAPI, usable by scripts.

Every route but ``login`` needs a session (401 without); state-changing routes
also need the session's CSRF token in ``X-CSRF-Token`` (403 without).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query, Request, Response
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from cloud.accounts import add_user, authenticate, list_users, set_disabled
from cloud.db.models import Alert, Role, Sample, utc_now
from cloud.review import (
    Label,
    SampleNotFound,
    queue_page,
    queue_size,
    record_review,
    review_trail,
    reviews_since,
    sample_views,
)
from cloud.web.auth import DbSession, end_session, start_session
from cloud.web.deps import Admin, App, Csrf, Expert, Operator, User
from cloud.web.events import alert_stream, parse_cursor
from cloud.web.feeds import MAX_PAGE, AlertFilters, alert_page, sample_page
from cloud.web.fleet import node_rows
from cloud.web.images import image_response, overlay_response
from cloud.web.similar_cases import similar_cases_of

__all__ = ["router"]

router = APIRouter(prefix="/api/v1")

_WRONG_LOGIN = "wrong user name or password"
Page = Annotated[int, Query(ge=1, le=MAX_PAGE, description="1 is the newest page")]
PerPage = Annotated[int, Query(ge=1, le=200)]
Name = Annotated[str | None, Query(max_length=128)]


class LoginRequest(BaseModel):
    """A user name and password."""

    username: str = Field(max_length=128)
    password: str = Field(max_length=1024)


class LoginAnswer(BaseModel):
    """Who logged in, and the token to send back in ``X-CSRF-Token``."""

    username: str
    role: Role
    csrf_token: str


class ReviewRequest(BaseModel):
    """A person's judgement of a sample."""

    label: Label
    defect_type: str | None = Field(default=None, max_length=64)
    note: str = Field(default="", max_length=2000)


class NewUser(BaseModel):
    """A user an admin adds."""

    username: str = Field(max_length=64)
    password: str = Field(min_length=8, max_length=1024)
    role: Role


def _filters(
    site: str | None, line: str | None, node: str | None, hours: float | None
) -> AlertFilters:
    since = datetime.now(UTC) - timedelta(hours=hours) if hours else None
    return AlertFilters(site=site or None, line=line or None, node=node or None, since=since)


@router.post("/login", tags=["session"], responses={401: {"description": _WRONG_LOGIN}})
def login(body: LoginRequest, request: Request, session: DbSession) -> LoginAnswer:
    """Start a session (cookie) and return the CSRF token for later state-changing calls."""
    user = authenticate(session, body.username, body.password)
    if user is None:
        raise HTTPException(status_code=401, detail=_WRONG_LOGIN)
    token = start_session(request, user)
    return LoginAnswer(username=user.username, role=user.role, csrf_token=token)


@router.post("/logout", tags=["session"], status_code=204)
def logout(request: Request, user: User, _: Csrf) -> Response:
    """End the session."""
    end_session(request)
    return Response(status_code=204)


@router.get("/me", tags=["session"])
def me(user: User) -> dict[str, str]:
    """Who this session belongs to."""
    return {"username": user.username, "role": user.role.value}


@router.get("/alerts", tags=["alerts"])
def alerts(
    user: Operator,
    session: DbSession,
    site: Name = None,
    line: Name = None,
    node: Name = None,
    hours: Annotated[float | None, Query(gt=0, le=24 * 366)] = None,
    page: Page = 1,
    per_page: PerPage = 50,
) -> list[dict[str, Any]]:
    """Alerts, newest first, filtered by site, line, node and age."""
    found = alert_page(session, _filters(site, line, node, hours), page=page, per_page=per_page)
    return [a.to_json() for a in found]


@router.get("/alerts/stream", tags=["alerts"], response_class=StreamingResponse)
def alerts_stream(
    request: Request,
    user: Operator,
    app: App,
    site: Name = None,
    line: Name = None,
    node: Name = None,
    after: Annotated[str | None, Query(max_length=200)] = None,
) -> StreamingResponse:
    """Server-Sent Events: each new alert as an ``alert`` event (JSON with an ``html`` row)."""
    cursor = parse_cursor(request.headers.get("last-event-id") or after)
    stream = alert_stream(request, app, _filters(site, line, node, None), cursor)
    headers = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
    return StreamingResponse(stream, media_type="text/event-stream", headers=headers)


@router.get("/alerts/{alert_id}/thumbnail", tags=["alerts"], response_class=Response)
def alert_thumbnail(alert_id: str, user: Operator, session: DbSession, app: App) -> Response:
    """The alert's thumbnail from the store (a placeholder if it is missing)."""
    alert = session.get(Alert, alert_id)
    if alert is None:
        raise HTTPException(status_code=404, detail=f"alert {alert_id}: no such alert")
    return image_response(app.store_root, alert.thumbnail_path, f"alert {alert_id}")


def _sample_json(session: DbSession, sample_id: str) -> dict[str, Any]:
    view = sample_views(session, [sample_id]).get(sample_id)
    if view is None:
        msg = f"sample {sample_id}: no such sample"
        raise SampleNotFound(msg)
    return {**view.to_json(), "review": view.label if view.review_state == "reviewed" else None}


@router.get("/samples", tags=["samples"])
def samples(
    user: Expert,
    session: DbSession,
    reviewed: bool | None = None,
    verdict: Literal["uncertain", "abnormal"] | None = None,
    node: Name = None,
    page: Page = 1,
    per_page: PerPage = 100,
) -> list[dict[str, Any]]:
    """Samples, newest first; ``reviewed=false`` is what still waits for a person."""
    found = sample_page(
        session, reviewed=reviewed, verdict=verdict, node=node, page=page, per_page=per_page
    )
    return [
        {**s.to_json(), "review": s.label if s.review_state == "reviewed" else None} for s in found
    ]


@router.get("/samples/{sample_id}", tags=["samples"])
def sample(sample_id: str, user: Expert, session: DbSession, app: App) -> dict[str, Any]:
    """One sample with its review trail, oldest first."""
    found = _sample_json(session, sample_id)
    trail = [
        r.__dict__ | {"created_at": r.created_at.isoformat()}
        for r in review_trail(session, sample_id)
    ]
    return {**found, "reviews": trail}


@router.post("/samples/{sample_id}/review", tags=["samples"])
def review(
    sample_id: str, body: ReviewRequest, user: Expert, _: Csrf, session: DbSession
) -> dict[str, Any]:
    """Record a review; reviewing again adds to the trail, it does not overwrite."""
    recorded = record_review(
        session, sample_id, body.label, user.username, defect_type=body.defect_type, note=body.note
    )
    return {**recorded.__dict__, "created_at": recorded.created_at.isoformat()}


@router.get("/samples/{sample_id}/similar", tags=["samples"])
def similar(
    sample_id: str,
    user: Expert,
    session: DbSession,
    app: App,
    k: Annotated[int, Query(ge=1, le=50)] = 6,
) -> list[dict[str, Any]]:
    """The most similar other samples of the same line, with their current labels."""
    return [
        {**case.sample.to_json(), "similarity": round(case.similarity, 4)}
        for case in similar_cases_of(app, session, sample_id, k)
    ]


@router.get("/samples/{sample_id}/image/{kind}", tags=["samples"], response_class=Response)
def sample_image(
    sample_id: str,
    kind: Literal["frame", "heatmap", "overlay"],
    user: Operator,
    session: DbSession,
    app: App,
) -> Response:
    """The sample's frame, anomaly map or overlay from the store (a placeholder if missing)."""
    found = session.get(Sample, sample_id)
    if found is None:
        msg = f"sample {sample_id}: no such sample"
        raise SampleNotFound(msg)
    what = f"sample {sample_id} {kind}"
    if kind == "overlay":
        return overlay_response(app.store_root, found.image_path, found.heatmap_path, what)
    path = found.image_path if kind == "frame" else found.heatmap_path
    return image_response(app.store_root, path, what)


@router.get("/review-queue", tags=["samples"])
def review_queue(user: Expert, session: DbSession) -> dict[str, Any]:
    """The queue's size, today's throughput and the next few sample ids."""
    midnight = utc_now().replace(hour=0, minute=0, second=0, microsecond=0)
    return {
        "size": queue_size(session),
        "reviewed_today": reviews_since(session, midnight),
        "next": [s.id for s in queue_page(session, limit=10)],
    }


@router.get("/nodes", tags=["fleet"])
def nodes(user: Operator, session: DbSession) -> list[dict[str, Any]]:
    """Every node with its status, heartbeat age, active model and outbox backlog."""
    return [row.__dict__ for row in node_rows(session, utc_now())]


@router.get("/users", tags=["users"])
def users(user: Admin, session: DbSession) -> list[dict[str, Any]]:
    """Every user (never their password hash)."""
    return [
        {"username": u.username, "role": u.role.value, "disabled": u.disabled}
        for u in list_users(session)
    ]


@router.post("/users", tags=["users"], status_code=201)
def create_user(body: NewUser, user: Admin, _: Csrf, session: DbSession) -> dict[str, str]:
    """Add a user."""
    added = add_user(session, body.username, body.password, body.role)
    return {"username": added.username, "role": added.role.value}


@router.post("/users/{username}/disable", tags=["users"])
def disable_user(username: str, user: Admin, _: Csrf, session: DbSession) -> dict[str, Any]:
    """Disable a user; their sessions stop working at once."""
    changed = set_disabled(session, username, disabled=True)
    return {"username": changed.username, "disabled": changed.disabled}
