"""A line that has run version 1 for a while: a registered model, samples, reviews.

Everything is real and small: a synthetic dataset, a detector trained on it and
registered in MLflow on a temporary SQLite store, a migrated SQLite database,
and sample images in a real content-addressed store. The reviewed normals are
good parts the dataset never showed (another seed of the same line), which
version 1 partly flags: the false alarms a retrain should remove.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cloud.collector.store import BlobStore
from cloud.db.repository import MessageWriter, SampleRecord
from cloud.registry import RegistrySettings, promote, register_bundle
from cloud.review import Label, record_review
from edge.runtime.mqtt_link import NodeIdentity
from tests.web_data import WebData

INPUT_SIZE = 128


def make_line_images(
    root: Path, *, n_good: int, n_defect_per_type: int
) -> tuple[list[Path], list[Path]]:
    """Good parts and defective parts of the same line, from a seed the dataset did not use."""
    from cloud.synth import generate_dataset

    made = generate_dataset(
        root, seed=5, n_train=n_good, n_test_good=0, n_test_per_defect=n_defect_per_type,
        size=INPUT_SIZE,
    )  # fmt: skip
    goods = sorted((made / "train" / "good").glob("*.png"))
    defects = sorted(path for path in (made / "test").rglob("*.png"))
    return goods, defects


def train_and_promote(
    data: Path, out: Path, name: str, settings: RegistrySettings, *, n_train_settings: int = 0
) -> int:
    """Train version 1 on ``data``, register it and make it production; return its version."""
    from cloud.train import TrainSettings, train_bundle

    # No density head: the incremental fit, tested on this version, cannot refit one.
    train_settings = TrainSettings(input_size=INPUT_SIZE, bank_sizes=(512, 256), density_head="off")
    bundle = train_bundle(data, out, name=name, settings=train_settings)
    version = register_bundle(bundle.directory, name, settings=settings).version
    promote(name, version, settings=settings)
    return version


@dataclass
class ReviewedLine:
    """The database and store of a line, and a way to add reviewed samples."""

    data: WebData

    def add(
        self,
        image: Path,
        label: Label | None,
        *,
        model: str = "metal",
        line: str = "line3",
        verdict: str = "uncertain",
    ) -> str:
        """Store a sample of ``image`` as the collector does; review it when ``label``."""
        store = BlobStore(self.data.store_dir)
        blob = store.put(image.read_bytes(), image.suffix)
        at = datetime.now(UTC) - timedelta(minutes=5)
        record = SampleRecord(
            id=uuid.uuid4().hex,
            node=NodeIdentity("plant1", line, "cam3"),
            frame_id=f"frame-{uuid.uuid4().hex[:8]}",
            captured_at=at,
            received_at=at,
            verdict=verdict,
            image_score=1.2,
            threshold=1.0,
            uncertain_low=0.25,
            model_name=model,
            model_version="1",
            model_sha256="ab" * 32,
            image_path=blob.path,
            image_sha256=blob.sha256,
            heatmap_path=None,
            heatmap_sha256=None,
        )
        with self.data.sessions.begin() as session:
            MessageWriter().add_sample(session, record)
            if label is not None:
                defect_type = "scratch" if label is Label.DEFECT else None
                record_review(session, record.id, label, "alice", defect_type=defect_type)
        return record.id
