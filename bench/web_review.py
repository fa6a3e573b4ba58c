"""Review queue page and similar-case search with 100,000 samples.

Usage::

    python bench/web_review.py [--samples 100000] [--requests 200] [--searches 1000]

Fills a fresh database (a temporary SQLite file, or the PostgreSQL database at
``$LINEWATCH_BENCH_PG_URL``, migrated with Alembic; the bench's rows are left
there) with ``--samples`` synthetic samples on 8 lines, a third of them reviewed,
each with a 64-d descriptor. Then, in process through the ASGI app (so the
figures are the server's, without a network):

1. ``GET /review`` ``--requests`` times, reviewing the shown sample through the
   API between requests (not timed) so each request shows a new one: p50/p99;
2. ``GET /alerts`` (first page, chart included): p50/p99;
3. the similar-case search: the first index load, then ``--searches`` searches
   of the in-memory index (p50/p99), and the same with the labels query.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "proto")]

from fastapi.testclient import TestClient  # noqa: E402
from sqlalchemy import insert  # noqa: E402

from cloud.accounts import add_user  # noqa: E402
from cloud.db.migrate import upgrade  # noqa: E402
from cloud.db.models import Alert, Node, Review, Role, Sample, SampleEmbedding  # noqa: E402
from cloud.db.session import make_engine, make_session_factory  # noqa: E402
from cloud.review import SimilarIndex  # noqa: E402
from cloud.web.app import create_app  # noqa: E402
from cloud.web.settings import WebSettings  # noqa: E402

_LINES = 8
_BATCH = 5_000
_PASSWORD = "bench-password"


def _percentiles(values_ms: list[float]) -> str:
    ordered = sorted(values_ms)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return f"p50 {statistics.median(ordered):7.2f} ms   p99 {p99:7.2f} ms   (n={len(ordered)})"


def _fill(url: str, count: int, seed: int) -> list[str]:
    """Insert nodes, samples, embeddings, reviews and alerts; return the sample ids."""
    rng = np.random.default_rng(seed)
    engine = make_engine(url)
    sessions = make_session_factory(engine)
    start = datetime.now(UTC) - timedelta(days=30)
    run = uuid.uuid4().hex[:6]
    with sessions.begin() as session:
        node_ids = []
        for line in range(_LINES):
            node = Node(site="bench", line=f"line{line}-{run}", node="cam1", online=True)
            session.add(node)
            session.flush()
            node_ids.append(node.id)
        add_user(session, f"bench-{run}", _PASSWORD, Role.EXPERT)
    ids = [uuid.uuid4().hex for _ in range(count)]
    vectors = rng.normal(size=(count, 64)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    for first in range(0, count, _BATCH):
        samples, embeddings, reviews, alerts = [], [], [], []
        for i in range(first, min(first + _BATCH, count)):
            at = start + timedelta(seconds=i * 25)
            node_id = node_ids[i % _LINES]
            reviewed = i % 3 == 0
            verdict = "uncertain" if i % 2 else "abnormal"
            label = ("defect" if i % 6 == 0 else "normal") if reviewed else None
            samples.append(
                {
                    "id": ids[i], "node_id": node_id, "frame_id": f"f{i}", "captured_at": at,
                    "received_at": at, "verdict": verdict,
                    "image_score": float(rng.gamma(4.0, 0.25)), "threshold": 1.0,
                    "uncertain_low": 0.8, "model_name": "bench", "model_version": "1",
                    "model_sha256": "", "image_path": f"missing/{i}.png", "image_sha256": "",
                    "heatmap_path": None, "heatmap_sha256": None, "extra": {},
                    "review_state": "reviewed" if reviewed else "pending",
                    "reviewed_at": at if reviewed else None, "label": label,
                }
            )  # fmt: skip
            embeddings.append(
                {
                    "sample_id": ids[i], "node_id": node_id, "created_at": at,
                    "vector": vectors[i].astype(np.float16).tobytes(),
                }
            )  # fmt: skip
            if reviewed:
                reviews.append(
                    {
                        "sample_id": ids[i], "reviewer": "bench", "label": label,
                        "defect_type": "crack" if label == "defect" else None,
                        "comment": "", "created_at": at,
                    }
                )  # fmt: skip
            if verdict == "abnormal":
                alerts.append(
                    {
                        "id": f"a{ids[i]}", "node_id": node_id, "frame_id": f"f{i}",
                        "captured_at": at, "received_at": at, "verdict": "abnormal",
                        "image_score": 1.5, "threshold": 1.0, "model_name": "bench",
                        "model_version": "1", "model_sha256": "", "thumbnail_path": None,
                        "sample_id": ids[i],
                    }
                )  # fmt: skip
        with sessions.begin() as session:
            session.execute(insert(Sample), samples)
            session.execute(insert(SampleEmbedding), embeddings)
            if reviews:
                session.execute(insert(Review), reviews)
            session.execute(insert(Alert), alerts)
    engine.dispose()
    return ids


def _bench_pages(url: str, store: Path, var: Path, requests: int, user: str) -> None:
    settings = WebSettings(db_url=url, store_dir=store, var_dir=var, embed_interval_s=60.0)
    with TestClient(create_app(settings), base_url="https://testserver") as client:
        token = client.post("/api/v1/login", json={"username": user, "password": _PASSWORD}).json()[
            "csrf_token"
        ]
        client.get("/review")  # warm: templates compiled, index loaded
        timings: list[float] = []
        for _ in range(requests):
            began = time.perf_counter()
            page = client.get("/review")
            timings.append((time.perf_counter() - began) * 1000)
            marker = 'id="sample" data-sample-id="'
            shown = page.text.split(marker, 1)[1].split('"', 1)[0]
            client.post(
                f"/api/v1/samples/{shown}/review",
                json={"label": "normal"},
                headers={"X-CSRF-Token": token},
            )
        print(f"review queue page        {_percentiles(timings)}")
        alert_timings = []
        for _ in range(max(20, requests // 4)):
            began = time.perf_counter()
            client.get("/alerts")
            alert_timings.append((time.perf_counter() - began) * 1000)
        print(f"alerts page (+ chart)    {_percentiles(alert_timings)}")


def _bench_search(url: str, ids: list[str], searches: int, seed: int) -> None:
    engine = make_engine(url)
    sessions = make_session_factory(engine)
    index = SimilarIndex()
    with sessions() as session:
        began = time.perf_counter()
        index.refresh(session)
        print(f"similar index first load {(time.perf_counter() - began) * 1000:7.1f} ms "
              f"for {len(index)} samples")  # fmt: skip
        rng = np.random.default_rng(seed)
        picks = [ids[i] for i in rng.integers(0, len(ids), size=searches)]
        search_ms, with_labels_ms = [], []
        for sample_id in picks:
            began = time.perf_counter()
            index.nearest(sample_id, 6)
            search_ms.append((time.perf_counter() - began) * 1000)
            began = time.perf_counter()
            index.refresh(session)
            index.similar_cases(session, sample_id, 6)
            with_labels_ms.append((time.perf_counter() - began) * 1000)
    engine.dispose()
    line_size = len(ids) // _LINES
    print(f"similar search, {line_size}/line {_percentiles(search_ms)}")
    print(f"  + refresh + labels query {_percentiles(with_labels_ms)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--searches", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="linewatch-bench-web-") as temp:
        root = Path(temp)
        url = os.environ.get("LINEWATCH_BENCH_PG_URL") or f"sqlite:///{root / 'bench.db'}"
        upgrade(url)
        began = time.perf_counter()
        ids = _fill(url, args.samples, args.seed)
        print(f"database                 {url.split('@')[-1]}")
        print(f"filled {args.samples} samples in {time.perf_counter() - began:.1f} s")
        with make_session_factory(make_engine(url))() as session:
            from sqlalchemy import select

            from cloud.db.models import User

            user = session.scalars(select(User.username).order_by(User.id.desc())).first()
        assert user is not None
        _bench_pages(url, root / "store", root / "var", args.requests, user)
        _bench_search(url, ids, args.searches, args.seed)


if __name__ == "__main__":
    main()
