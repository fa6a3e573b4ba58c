"""The collector: MQTT alerts, samples and status into the database and the image store."""

from cloud.collector.collector import Collector, CollectorStats
from cloud.collector.decode import Decoded, Rejected, decode
from cloud.collector.settings import CollectorSettings
from cloud.collector.store import BlobStore, StoredBlob

__all__ = [
    "BlobStore",
    "Collector",
    "CollectorSettings",
    "CollectorStats",
    "Decoded",
    "Rejected",
    "StoredBlob",
    "decode",
]
