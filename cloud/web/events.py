"""The live alert feed as Server-Sent Events.

The stream polls the database for alerts received after a cursor
``(received_at, id)``; the page passes the cursor of the newest alert it
rendered, and a reconnecting browser sends it back as ``Last-Event-ID``, so no
alert falls between the page and the stream. Polling the database, not a
message bus, means any number of web workers see what any collector stored.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from datetime import datetime

from fastapi import Request
from starlette.concurrency import run_in_threadpool

from cloud.db.models import utc_now
from cloud.db.queries import AlertView
from cloud.web.deps import Services
from cloud.web.feeds import AlertFilters, alerts_after

__all__ = ["alert_stream", "format_cursor", "parse_cursor"]

logger = logging.getLogger(__name__)

_KEEPALIVE_EVERY = 20  # polls; a comment line lets a proxy see the stream is alive
_RETRY_MS = 2000


def format_cursor(alert: AlertView) -> str:
    """The event id of an alert: where a reconnecting browser resumes."""
    return f"{alert.received_at.isoformat()}|{alert.id}"


def parse_cursor(text: str | None) -> tuple[datetime, str]:
    """Return the cursor in ``text``, or now for a missing or malformed one."""
    if text:
        at, _, alert_id = text.partition("|")
        try:
            parsed = datetime.fromisoformat(at)
        except ValueError:
            parsed = None
        if parsed is not None and parsed.tzinfo is not None:
            return parsed, alert_id
    return utc_now(), ""


def _event(app: Services, alert: AlertView) -> str:
    html = app.templates.get_template("_alert_row.html").render(alert=alert)
    data = json.dumps({**alert.to_json(), "html": html})
    return f"id: {format_cursor(alert)}\nevent: alert\ndata: {data}\n\n"


async def alert_stream(
    request: Request, app: Services, filters: AlertFilters, cursor: tuple[datetime, str]
) -> AsyncIterator[str]:
    """Yield SSE frames for every alert after ``cursor`` until the browser goes away."""

    def read(after: tuple[datetime, str]) -> list[AlertView]:
        with app.sessions() as session:
            return alerts_after(session, filters, after)

    yield f"retry: {_RETRY_MS}\n\n"
    polls = 0
    while not await request.is_disconnected():
        fresh = await run_in_threadpool(read, cursor)
        for alert in fresh:
            cursor = (alert.received_at, alert.id)
            yield _event(app, alert)
        polls += 1
        if not fresh and polls % _KEEPALIVE_EVERY == 0:
            yield ": keep-alive\n\n"
        await asyncio.sleep(app.settings.live_poll_s)  # the poll interval, not a wait for a result
