"""Data for the web app and review tests, written through the collector's storage path.

Samples and alerts go in as the collector stores them: images into a real
``BlobStore``, rows through ``MessageWriter`` into a database migrated by Alembic.
Images are small, generated from a seed, and never committed.
"""

from __future__ import annotations

import itertools
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np
from sqlalchemy.orm import Session, sessionmaker

if TYPE_CHECKING:
    from fastapi.testclient import TestClient

from cloud.accounts import add_user
from cloud.collector.store import BlobStore
from cloud.db.migrate import upgrade
from cloud.db.models import Role
from cloud.db.repository import AlertRecord, MessageWriter, SampleRecord
from cloud.db.session import make_engine, make_session_factory
from edge.runtime.mqtt_link import NodeIdentity

PASSWORD = "correct horse battery"
_clock = itertools.count()


def pattern_png(seed: int, side: int = 48) -> bytes:
    """A seeded grey pattern: different seeds give clearly different pictures."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, size=(4, 4), dtype=np.uint8)
    image = cv2.resize(coarse, (side, side), interpolation=cv2.INTER_LINEAR)
    ok, encoded = cv2.imencode(".png", image)
    assert ok
    return encoded.tobytes()


def noisy_copy_png(png: bytes, seed: int, amount: int = 6) -> bytes:
    """The same picture with a little seeded noise: a near duplicate."""
    image = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_GRAYSCALE)
    noise = np.random.default_rng(seed).integers(-amount, amount + 1, size=image.shape)
    ok, encoded = cv2.imencode(".png", np.clip(image + noise, 0, 255).astype(np.uint8))
    assert ok
    return encoded.tobytes()


@dataclass
class WebData:
    """A migrated database, a sample store and a way to add what nodes send."""

    db_url: str
    store_dir: Path
    sessions: sessionmaker[Session]

    @classmethod
    def create(cls, root: Path) -> WebData:
        """Migrate a fresh SQLite file under ``root`` and make an empty store."""
        db_url = f"sqlite:///{root / 'linewatch.db'}"
        upgrade(db_url)
        store_dir = root / "samples"
        BlobStore(store_dir)
        return cls(db_url, store_dir, make_session_factory(make_engine(db_url)))

    def close(self) -> None:
        """Dispose of the engine."""
        engine = self.sessions.kw["bind"]
        engine.dispose()

    def add_user(self, name: str, role: Role, password: str = PASSWORD) -> None:
        """Add an enabled user."""
        with self.sessions.begin() as session:
            add_user(session, name, password, role)

    def add_sample(
        self,
        *,
        verdict: str = "uncertain",
        line: str = "line3",
        node: str = "cam3",
        image_png: bytes | None = None,
        heatmap: bool = True,
        captured_at: datetime | None = None,
        score: float = 1.0,
    ) -> str:
        """Store a sample as the collector does; returns its id."""
        store = BlobStore(self.store_dir)
        image = store.put(image_png or pattern_png(next(_clock)), ".png")
        heat = store.put(pattern_png(10_000 + next(_clock)), ".png") if heatmap else None
        at = captured_at or (datetime.now(UTC) - timedelta(hours=1) + _tick())
        record = SampleRecord(
            id=uuid.uuid4().hex,
            node=NodeIdentity("plant1", line, node),
            frame_id=f"frame-{uuid.uuid4().hex[:8]}",
            captured_at=at,
            received_at=at,
            verdict=verdict,
            image_score=score,
            threshold=1.0,
            uncertain_low=0.8,
            model_name="metal",
            model_version="3",
            model_sha256="ab" * 32,
            image_path=image.path,
            image_sha256=image.sha256,
            heatmap_path=heat.path if heat else None,
            heatmap_sha256=heat.sha256 if heat else None,
        )
        with self.sessions.begin() as session:
            MessageWriter().add_sample(session, record)
        return record.id

    def add_alert(
        self,
        *,
        line: str = "line3",
        node: str = "cam3",
        sample_id: str | None = None,
        captured_at: datetime | None = None,
    ) -> str:
        """Store an alert as the collector does; returns its id."""
        at = captured_at or datetime.now(UTC)
        record = AlertRecord(
            id=uuid.uuid4().hex,
            node=NodeIdentity("plant1", line, node),
            frame_id=f"frame-{uuid.uuid4().hex[:8]}",
            captured_at=at,
            received_at=at,
            verdict="abnormal",
            image_score=1.7,
            threshold=1.0,
            model_name="metal",
            model_version="3",
            model_sha256="ab" * 32,
            thumbnail_path=None,
            sample_id=sample_id,
        )
        with self.sessions.begin() as session:
            MessageWriter().add_alert(session, record)
        return record.id


def _tick() -> timedelta:
    """Strictly increasing capture times, so 'earlier' is well defined."""
    return timedelta(milliseconds=next(_clock))


def web_client(data: WebData, root: Path, **settings_overrides: object) -> TestClient:
    """A TestClient on a web app over ``data`` (use it as a context manager).

    ``settings_overrides`` are further ``WebSettings`` fields, e.g. ``tracking_uri``.
    """
    from fastapi.testclient import TestClient

    from cloud.web.app import create_app
    from cloud.web.settings import WebSettings

    settings = WebSettings(
        db_url=data.db_url,
        store_dir=data.store_dir,
        var_dir=root / "var",
        embed_interval_s=0.2,
        live_poll_s=0.1,
        **settings_overrides,  # type: ignore[arg-type]
    )
    return TestClient(create_app(settings), base_url="https://testserver")


def login(client: TestClient, name: str, password: str = PASSWORD) -> str:
    """Log in through the API; returns the CSRF token."""
    answer = client.post("/api/v1/login", json={"username": name, "password": password})
    assert answer.status_code == 200, answer.text
    token: str = answer.json()["csrf_token"]
    return token
