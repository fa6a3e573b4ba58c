"""What the demo shows while it runs: each node's frames and verdicts, the collector's rows."""

from __future__ import annotations

import urllib.error
import urllib.request
from dataclasses import dataclass

from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from cloud.db.models import Alert, Sample

__all__ = ["NodeView", "collected_counts", "node_view"]


@dataclass(frozen=True)
class NodeView:
    """One node's counters, read from its /metrics endpoint."""

    frames: int
    dropped: int
    verdicts: dict[str, int]
    model: str


def node_view(metrics_url: str, timeout_s: float = 2.0) -> NodeView | None:
    """Scrape a node's metrics; None while it does not answer."""
    try:
        with urllib.request.urlopen(metrics_url, timeout=timeout_s) as response:
            text = response.read().decode()
    except (urllib.error.URLError, OSError):
        return None
    frames = dropped = 0
    verdicts: dict[str, int] = {}
    model = "waiting for a model"
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "linewatch_frames_processed_total":
                frames += int(sample.value)
            elif sample.name == "linewatch_frames_dropped_total":
                dropped += int(sample.value)
            elif sample.name == "linewatch_verdicts_total":
                verdict = sample.labels.get("verdict", "?")
                verdicts[verdict] = verdicts.get(verdict, 0) + int(sample.value)
            elif sample.name == "linewatch_model_info" and sample.value == 1:
                model = f"{sample.labels.get('name')}:{sample.labels.get('version')}"
    return NodeView(frames=frames, dropped=dropped, verdicts=verdicts, model=model)


def collected_counts(sessions: sessionmaker[Session]) -> tuple[int, int]:
    """(alerts, samples) the collector has stored so far."""
    with sessions() as session:
        alerts = session.scalar(select(func.count()).select_from(Alert)) or 0
        samples = session.scalar(select(func.count()).select_from(Sample)) or 0
    return int(alerts), int(samples)
