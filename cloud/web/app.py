"""The web app: FastAPI with server-rendered pages, the JSON API, sessions and errors.

``create_app`` wires one app to one database and sample store. A background
thread gives new samples their similar-case descriptor, so the review page
rarely has to compute one while a person waits.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from urllib.parse import quote

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from sqlalchemy.exc import SQLAlchemyError
from starlette.middleware.sessions import SessionMiddleware

from cloud.accounts import AccountError
from cloud.db.session import make_engine, make_session_factory
from cloud.errors import VersionNotFound
from cloud.review import ReviewError, SampleNotFound, SimilarIndex, embed_missing
from cloud.web import api, pages
from cloud.web.auth import CSRF_HEADER, CsrfRejected, Forbidden, LoginRequired
from cloud.web.deps import Services
from cloud.web.registry_reader import RegistryReader
from cloud.web.settings import WebSettings, cookies_secure, session_secret

__all__ = ["SESSION_COOKIE", "create_app"]

logger = logging.getLogger(__name__)

SESSION_COOKIE = "linewatch_session"
_HERE = Path(__file__).parent
_SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        "connect-src 'self'; frame-ancestors 'none'; form-action 'self'"
    ),
}


def _is_api(request: Request) -> bool:
    return request.url.path.startswith("/api/") and request.url.path != "/api/docs"


def _error(request: Request, status: int, message: str) -> Response:
    if _is_api(request):
        return JSONResponse({"detail": message}, status_code=status)
    services: Services = request.app.state.services
    return services.templates.TemplateResponse(
        request,
        "error.html",
        {"user": getattr(request.state, "user", None), "status": status, "message": message},
        status_code=status,
    )


def _install_handlers(app: FastAPI) -> None:
    @app.exception_handler(LoginRequired)
    async def login_required(request: Request, exc: LoginRequired) -> Response:
        if _is_api(request):
            return JSONResponse({"detail": "login required"}, status_code=401)
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"/login?next={quote(target)}", status_code=303)

    @app.exception_handler(Forbidden)
    async def forbidden(request: Request, exc: Forbidden) -> Response:
        return _error(request, 403, "your role may not do this; ask an admin")

    @app.exception_handler(CsrfRejected)
    async def csrf_rejected(request: Request, exc: CsrfRejected) -> Response:
        message = f"CSRF token missing or wrong; reload the page or send {CSRF_HEADER}"
        return _error(request, 403, message)

    @app.exception_handler(SampleNotFound)
    @app.exception_handler(VersionNotFound)
    async def not_found(request: Request, exc: Exception) -> Response:
        return _error(request, 404, str(exc))

    @app.exception_handler(ReviewError)
    @app.exception_handler(AccountError)
    async def refused(request: Request, exc: Exception) -> Response:
        return _error(request, 422, str(exc))

    @app.exception_handler(SQLAlchemyError)
    async def database_down(request: Request, exc: SQLAlchemyError) -> Response:
        logger.error("database error path=%s", request.url.path, exc_info=exc)
        return _error(request, 503, "the database did not answer; try again shortly")

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> Response:
        if _is_api(request):
            return JSONResponse({"detail": exc.errors()}, status_code=422)
        return _error(request, 422, "that request does not look right; go back and try again")

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> Response:
        return _error(request, exc.status_code, str(exc.detail))


def _embedder(services: Services, stop: threading.Event) -> None:
    """Give new samples their descriptor in the background, until ``stop``."""
    settings = services.settings
    while True:
        try:
            with services.sessions.begin() as session:
                done = embed_missing(session, services.store_root, limit=settings.embed_batch)
        except SQLAlchemyError:
            logger.warning("embedding pass failed; retrying", exc_info=True)
            done = 0
        if stop.wait(0 if done >= settings.embed_batch else settings.embed_interval_s):
            return


def create_app(settings: WebSettings) -> FastAPI:
    """Return the web app on ``settings.db_url`` and ``settings.store_dir``.

    Raises:
        ConfigError: no session key and none can be kept under ``var_dir``.
        StoreError: the database URL cannot be used.
    """
    engine = make_engine(settings.db_url, create_dirs=False)
    services = Services(
        settings=settings,
        sessions=make_session_factory(engine),
        store_root=settings.store_dir,
        similar=SimilarIndex(),
        templates=Jinja2Templates(directory=_HERE / "templates"),
        registry_reader=RegistryReader(settings.registry_timeout_s),
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        stop = threading.Event()
        worker = threading.Thread(
            target=_embedder, args=(services, stop), name="linewatch-embedder", daemon=True
        )
        worker.start()
        try:
            yield
        finally:
            stop.set()
            worker.join(timeout=30)
            engine.dispose()

    app = FastAPI(
        title="Linewatch",
        summary="Live alerts, the review queue and the fleet, for people and scripts.",
        version="1",
        docs_url=None,  # Swagger UI loads its scripts from a CDN; /api/docs renders here
        redoc_url=None,
        openapi_url=None,  # served by pages.openapi_schema, behind the login
        lifespan=lifespan,
    )
    app.state.services = services
    app.state.sessions = services.sessions
    app.add_middleware(
        SessionMiddleware,
        secret_key=session_secret(settings),
        session_cookie=SESSION_COOKIE,
        max_age=settings.session_max_age_s,
        same_site="lax",
        https_only=cookies_secure(settings),
    )

    @app.middleware("http")
    async def security_headers(request: Request, call_next: object) -> Response:
        response: Response = await call_next(request)  # type: ignore[operator]
        for name, value in _SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        return response

    _install_handlers(app)
    app.include_router(api.router)
    app.include_router(pages.router)
    app.mount("/static", StaticFiles(directory=_HERE / "static"), name="static")
    return app
