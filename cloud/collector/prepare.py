"""Raw MQTT messages → records ready to write, decoded and converted outside the transaction.

Everything that costs CPU or disk but needs no database happens here, before the
writer opens a transaction: protobuf parsing, the checks, the conversion to
records, and the batch's images written to the store by a small thread pool
(hashing a 1 MB PNG takes milliseconds and releases the GIL) with one flush of
the file system for the batch. Images are on disk before the row naming them is
committed and before the message is acknowledged. A message that cannot be
stored becomes a dead-letter record with its reason; only a store that cannot
write (disk full) raises, and the writer retries the batch.
"""

from __future__ import annotations

import hashlib
import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime

from cloud.collector.decode import Decoded, Rejected, decode
from cloud.collector.records import images_of, to_record
from cloud.collector.store import BlobStore, StoredBlob
from cloud.db.repository import Record, RejectedRecord, StatusRecord
from edge.runtime.mqtt_link import MessageKind

__all__ = ["Inbound", "Prepared", "Preparer", "kind_of_topic"]

logger = logging.getLogger(__name__)

_MAX_TOPIC_CHARS = 256
_MAX_REASON_CHARS = 1024
_KINDS = frozenset(kind.value for kind in MessageKind)


@dataclass(frozen=True)
class Inbound:
    """One message as paho delivered it, with what is needed to acknowledge it later."""

    topic: str
    payload: bytes
    mid: int
    qos: int
    generation: int
    received_at: datetime


@dataclass(frozen=True)
class Prepared:
    """A message and the record that stores it (a dead letter when it was refused)."""

    item: Inbound
    kind: str
    record: Record
    message_id: str = ""
    captured_at_ms: int = 0
    refused_by_database: bool = False

    @property
    def rejected(self) -> bool:
        """True when this message is set aside rather than stored."""
        return isinstance(self.record, RejectedRecord)


def kind_of_topic(topic: str) -> str:
    """The topic's last level when it is a known kind, else ``unknown`` (a metrics label)."""
    last = topic.rsplit("/", 1)[-1]
    return last if last in _KINDS else "unknown"


class Preparer:
    """Turns batches of inbound messages into records; owns the image-writing pool."""

    def __init__(
        self,
        store: BlobStore,
        *,
        collector_id: str,
        max_future_ms: int,
        payload_keep_bytes: int,
        store_workers: int,
    ) -> None:
        """Prepare a pool of ``store_workers`` threads for image writes.

        Args:
            store: where images go.
            collector_id: named in every dead letter.
            max_future_ms: how far ahead of this clock a message's time may be.
            payload_keep_bytes: how much of a refused payload the dead letter keeps.
            store_workers: images written at once.
        """
        self._store = store
        self._collector_id = collector_id
        self._max_future_ms = max_future_ms
        self._payload_keep_bytes = payload_keep_bytes
        self._pool = ThreadPoolExecutor(store_workers, thread_name_prefix="collector-store")

    def prepare(self, batch: list[Inbound]) -> list[Prepared]:
        """Decode, check and convert a batch, writing its images; order is kept.

        Raises:
            StoreError: an image could not be written (the batch should be retried).
        """
        decoded_items: list[tuple[Inbound, Decoded]] = []
        prepared: dict[int, Prepared] = {}
        for position, item in enumerate(batch):
            decoded = self._decode(item)
            if isinstance(decoded, Rejected):
                logger.warning(
                    "message set aside topic=%s size_bytes=%d reason=%s",
                    item.topic,
                    len(item.payload),
                    decoded.reason,
                )
                prepared[position] = self.reject(item, decoded.reason)
            else:
                decoded_items.append((item, decoded))
        images = [images_of(decoded) for _, decoded in decoded_items]
        flat = [image for per_message in images for image in per_message]
        stored = self._store.put_many(flat, map_function=self._pool.map)
        converted: list[Prepared] = []
        for (item, decoded), own in zip(decoded_items, images, strict=True):
            converted.append(self._converted(item, decoded, stored[: len(own)]))
            stored = stored[len(own) :]
        in_order = iter(converted)
        return [prepared[i] if i in prepared else next(in_order) for i in range(len(batch))]

    def reject(self, item: Inbound, reason: str, *, by_database: bool = False) -> Prepared:
        """Return the dead-letter record of ``item``: its first bytes and ``reason``.

        Args:
            item: the message to set aside.
            reason: why, for the person reading ``rejected_messages``.
            by_database: the database refused it (else it was refused before, as malformed).
        """
        fingerprint = hashlib.sha256(item.topic.encode("utf-8", "replace"))
        fingerprint.update(b"\0")
        fingerprint.update(item.payload)
        record = RejectedRecord(
            fingerprint=fingerprint.hexdigest(),
            received_at=item.received_at,
            topic=item.topic[:_MAX_TOPIC_CHARS],
            payload=item.payload[: self._payload_keep_bytes],
            payload_size_bytes=len(item.payload),
            reason=reason[:_MAX_REASON_CHARS],
            collector_id=self._collector_id,
        )
        return Prepared(item, kind_of_topic(item.topic), record, refused_by_database=by_database)

    def close(self) -> None:
        """Finish the image writes under way and stop the pool."""
        self._pool.shutdown(wait=True)

    def _decode(self, item: Inbound) -> Decoded | Rejected:
        try:
            return decode(item.topic, item.payload, max_future_ms=self._max_future_ms)
        except Exception as exc:  # a payload that breaks the parser must not stop the writer
            logger.exception("decoding failed topic=%s", item.topic)
            return Rejected(f"cannot decode ({type(exc).__name__}: {exc})")

    def _converted(self, item: Inbound, decoded: Decoded, stored: list[StoredBlob]) -> Prepared:
        try:
            record = to_record(decoded, item.received_at, stored)
        except Exception as exc:  # supervised: one message's fault must not stop the writer
            logger.exception("cannot convert message topic=%s", item.topic)
            return self.reject(item, f"cannot convert ({type(exc).__name__}: {exc})")
        if isinstance(record, StatusRecord):
            return Prepared(item, decoded.kind.value, record)
        message = decoded.message
        return Prepared(
            item,
            decoded.kind.value,
            record,
            message_id=message.id,
            captured_at_ms=int(getattr(message, "captured_at_ms", 0)),
        )
