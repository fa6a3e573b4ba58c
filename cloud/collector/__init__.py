"""The collector: MQTT alerts, samples and status into the database and the image store."""

from cloud.collector.collector import Collector
from cloud.collector.decode import Decoded, Rejected, decode
from cloud.collector.metrics import CollectorMetrics
from cloud.collector.settings import CollectorSettings
from cloud.collector.stats import CollectorStats
from cloud.collector.store import BlobStore, StoredBlob

__all__ = [
    "BlobStore",
    "Collector",
    "CollectorMetrics",
    "CollectorSettings",
    "CollectorStats",
    "Decoded",
    "Rejected",
    "StoredBlob",
    "decode",
]
