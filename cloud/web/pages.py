"""The server-rendered pages: login, alerts, review queue, sample, nodes, models, users.

Forms post with the session's CSRF token and answer with a redirect (post,
redirect, get), so a reload never repeats a review. Pages need a session:
without one they redirect to ``/login``.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.orm import Session

from cloud.accounts import UserView, add_user, authenticate, list_users, set_disabled
from cloud.db.models import Role, utc_now
from cloud.review import (
    Label,
    SampleNotFound,
    defect_types_seen,
    queue_page,
    queue_size,
    record_review,
    review_trail,
    reviews_since,
    sample_views,
)
from cloud.web.auth import DbSession, csrf_token, end_session, start_session
from cloud.web.charts import alerts_per_hour_svg, score_histogram_svg
from cloud.web.deps import Admin, App, Csrf, Expert, Operator
from cloud.web.events import format_cursor
from cloud.web.feeds import MAX_PAGE, AlertFilters, alert_page, alerts_per_hour, reviewed_scores
from cloud.web.fleet import list_deployments, node_rows, registry_rows
from cloud.web.model_versions import MAX_LISTED_SAMPLES, version_detail
from cloud.web.similar_cases import similar_cases_of

__all__ = ["router", "safe_next"]

router = APIRouter(include_in_schema=False)

_SKIPPED_KEY = "skipped"
_MAX_SKIPPED = 50  # the cookie stays small
_WRONG_LOGIN = "Wrong user name or password."
Text = Annotated[str, Form(max_length=2000)]


def safe_next(target: str | None) -> str:
    """A local path to go to after login (never another site)."""
    if target and target.startswith("/") and not target.startswith(("//", "/\\")):
        return target
    return "/"


def _render(
    app: App, request: Request, name: str, status_code: int = 200, **context: Any
) -> HTMLResponse:
    user: UserView | None = getattr(request.state, "user", None)
    return app.templates.TemplateResponse(
        request,
        name,
        {"user": user, "csrf_token": csrf_token(request), "Role": Role, **context},
        status_code=status_code,
    )


def _redirect(path: str) -> RedirectResponse:
    return RedirectResponse(path, status_code=303)


@router.get("/login")
def login_form(request: Request, app: App, next: str | None = None) -> HTMLResponse:
    """The login form."""
    return _render(app, request, "login.html", next=safe_next(next), error=None)


@router.post("/login")
def login(
    request: Request,
    app: App,
    session: DbSession,
    _: Csrf,
    username: Annotated[str, Form(max_length=128)],
    password: Annotated[str, Form(max_length=1024)],
    next: Annotated[str, Form(max_length=2000)] = "/",
) -> Response:
    """Log in from the form; the same message whichever part was wrong."""
    user = authenticate(session, username, password)
    if user is None:
        return _render(app, request, "login.html", 401, next=safe_next(next), error=_WRONG_LOGIN)
    start_session(request, user)
    return _redirect(safe_next(next))


@router.post("/logout")
def logout(request: Request, _: Csrf) -> Response:
    """Log out and go back to the login form."""
    end_session(request)
    return _redirect("/login")


@router.get("/")
def home(user: Operator) -> Response:
    """Operators start on the alerts."""
    return _redirect("/alerts" if user.role is Role.OPERATOR else "/review")


@router.get("/alerts")
def alerts(
    request: Request,
    user: Operator,
    app: App,
    session: DbSession,
    site: Annotated[str, Query(max_length=128)] = "",
    line: Annotated[str, Query(max_length=128)] = "",
    node: Annotated[str, Query(max_length=128)] = "",
    hours: Annotated[float, Query(ge=0, le=24 * 366)] = 0,
    page: Annotated[int, Query(ge=1)] = 1,
) -> HTMLResponse:
    """The alert feed: filters, a chart per line, and new alerts arriving live."""
    page = min(page, MAX_PAGE)
    since = datetime.now(UTC) - timedelta(hours=hours) if hours else None
    filters = AlertFilters(site or None, line or None, node or None, since)
    found = alert_page(session, filters, page=page, per_page=50)
    cursor = format_cursor(found[0]) if found and page == 1 else f"{utc_now().isoformat()}|"
    stream_query = "&".join(
        f"{key}={quote(value)}"
        for key, value in (("site", site), ("line", line), ("node", node))
        if value
    )
    return _render(
        app,
        request,
        "alerts.html",
        alerts=found,
        filters={"site": site, "line": line, "node": node, "hours": hours},
        page=page,
        cursor=cursor,
        stream_query=stream_query,
        chart=alerts_per_hour_svg(alerts_per_hour(session, utc_now())),
    )


def _skipped(request: Request) -> list[str]:
    value = request.session.get(_SKIPPED_KEY, [])
    return [str(v) for v in value] if isinstance(value, list) else []


def _sample_context(app: App, session: Session, sample_id: str) -> dict[str, Any]:
    view = sample_views(session, [sample_id]).get(sample_id)
    if view is None:
        msg = f"sample {sample_id}: no such sample"
        raise SampleNotFound(msg)
    return {
        "sample": view,
        "trail": review_trail(session, sample_id),
        "similar": similar_cases_of(app, session, sample_id, 6),
    }


@router.get("/review")
def review_queue(request: Request, user: Expert, app: App, session: DbSession) -> HTMLResponse:
    """The next sample to review, large, with similar past cases and the queue's figures."""
    midnight = utc_now().replace(hour=0, minute=0, second=0, microsecond=0)
    upcoming = queue_page(session, skip=_skipped(request), limit=1)
    context = _sample_context(app, session, upcoming[0].id) if upcoming else {"sample": None}
    histogram = app.score_chart.get(lambda: score_histogram_svg(*reviewed_scores(session)))
    return _render(
        app,
        request,
        "review.html",
        in_queue=True,
        queue_size=queue_size(session),
        reviewed_today=reviews_since(session, midnight),
        defect_types=defect_types_seen(session),
        histogram=histogram,
        **context,
    )


@router.get("/samples/{sample_id}")
def sample_page(
    sample_id: str, request: Request, user: Expert, app: App, session: DbSession
) -> HTMLResponse:
    """One sample, as in the queue, with its review trail."""
    return _render(
        app,
        request,
        "review.html",
        in_queue=False,
        defect_types=defect_types_seen(session),
        **_sample_context(app, session, sample_id),
    )


@router.post("/review/{sample_id}")
def review(
    sample_id: str,
    request: Request,
    user: Expert,
    _: Csrf,
    session: DbSession,
    label: Annotated[Label, Form()],
    defect_type: Annotated[str, Form(max_length=64)] = "",
    note: Text = "",
    back: Annotated[str, Form(max_length=2000)] = "/review",
) -> Response:
    """Record the reviewer's label and show the next sample."""
    record_review(
        session, sample_id, label, user.username, defect_type=defect_type or None, note=note
    )
    return _redirect(safe_next(back))


@router.post("/review/{sample_id}/skip")
def skip(sample_id: str, request: Request, user: Expert, _: Csrf) -> Response:
    """Leave a sample for later (for this session only) and show the next one."""
    skipped = [s for s in _skipped(request) if s != sample_id][-(_MAX_SKIPPED - 1) :]
    request.session[_SKIPPED_KEY] = [*skipped, sample_id]
    return _redirect("/review")


@router.get("/nodes")
def nodes(request: Request, user: Operator, app: App, session: DbSession) -> HTMLResponse:
    """Every node: online, heartbeat age, active model, outbox backlog."""
    return _render(app, request, "nodes.html", nodes=node_rows(session, utc_now()))


@router.get("/models")
def models(request: Request, user: Operator, app: App, session: DbSession) -> HTMLResponse:
    """MLflow versions and aliases (with --tracking-uri) and the deployment history."""
    versions, registry_note = registry_rows(app.settings.tracking_uri, app.registry_reader)
    return _render(
        app,
        request,
        "models.html",
        versions=versions,
        registry_note=registry_note,
        deployments=list_deployments(session),
    )


@router.get("/models/{name}/{version}")
def model_version(
    name: str, version: str, request: Request, user: Operator, app: App
) -> HTMLResponse:
    """One registered version: its gate report and the reviewed samples it learnt from."""
    detail, registry_note = version_detail(
        app.settings.tracking_uri, name, version, app.registry_reader
    )
    return _render(
        app,
        request,
        "model_version.html",
        200 if detail is not None else 503,
        model_name=name,
        model_version=version,
        detail=detail,
        registry_note=registry_note,
        max_listed=MAX_LISTED_SAMPLES,
    )


@router.get("/users")
def users(request: Request, user: Admin, app: App, session: DbSession) -> HTMLResponse:
    """Users and their roles; add or disable one."""
    return _render(app, request, "users.html", users=list_users(session), roles=list(Role))


@router.post("/users")
def users_add(
    user: Admin,
    _: Csrf,
    session: DbSession,
    username: Annotated[str, Form(max_length=64)],
    password: Annotated[str, Form(max_length=1024)],
    role: Annotated[Role, Form()],
) -> Response:
    """Add a user from the form."""
    add_user(session, username, password, role)
    return _redirect("/users")


@router.post("/users/{username}/disable")
def users_disable(username: str, user: Admin, _: Csrf, session: DbSession) -> Response:
    """Disable a user from the form."""
    set_disabled(session, username, disabled=True)
    return _redirect("/users")


@router.get("/api/docs")
def api_docs(request: Request, user: Operator, app: App) -> HTMLResponse:
    """The JSON API's reference, rendered here from its OpenAPI schema (no CDN scripts)."""
    schema = request.app.openapi()
    return _render(app, request, "api_docs.html", schema=schema)


@router.get("/api/openapi.json")
def openapi_schema(request: Request, user: Operator) -> dict[str, Any]:
    """The OpenAPI schema of the JSON API."""
    schema: dict[str, Any] = request.app.openapi()
    return schema
