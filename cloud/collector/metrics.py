"""The collector's Prometheus metrics: what arrived, what was stored, and how late.

Each collector has its own registry (tests run several in one process);
``linewatch collect --metrics :9200`` serves it. ``deploy/grafana/linewatch.json``
charts these names, and a test checks that every name it queries is defined here
or in ``edge.metrics``.
"""

from __future__ import annotations

import logging

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from cloud.errors import ConfigError

__all__ = ["CollectorMetrics", "parse_listen_address", "serve_collector_metrics"]

logger = logging.getLogger(__name__)

_BATCH_SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)
_COMMIT_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
_LAG_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)


class CollectorMetrics:
    """Counters by message kind, batch and commit histograms, lag, inbox depth."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        """Define every metric in ``registry`` (a new one when None)."""
        self.registry = registry or CollectorRegistry(auto_describe=True)
        r = self.registry
        self.received = Counter(
            "linewatch_collector_received", "Messages delivered by the broker", ["kind"], registry=r
        )
        self.stored = Counter(
            "linewatch_collector_stored", "Messages committed as new rows", ["kind"], registry=r
        )
        self.duplicates = Counter(
            "linewatch_collector_duplicates",
            "Messages already stored (resends), acknowledged without a new row",
            ["kind"],
            registry=r,
        )
        self.rejected = Counter(
            "linewatch_collector_rejected",
            "Messages set aside in rejected_messages, with a reason",
            ["kind"],
            registry=r,
        )
        self.batch_size = Histogram(
            "linewatch_collector_batch_size",
            "Messages per committed transaction",
            buckets=_BATCH_SIZE_BUCKETS,
            registry=r,
        )
        self.commit_latency = Histogram(
            "linewatch_collector_commit_seconds",
            "Time to write and commit one batch",
            buckets=_COMMIT_BUCKETS_S,
            registry=r,
        )
        self.lag = Histogram(
            "linewatch_collector_lag_seconds",
            "From a frame's capture at the node to the commit of its row",
            buckets=_LAG_BUCKETS_S,
            registry=r,
        )
        self.inbox_depth = Gauge(
            "linewatch_collector_inbox_depth",
            "Messages received and waiting for the writer",
            registry=r,
        )
        self.db_retries = Counter(
            "linewatch_collector_db_retries",
            "Batches retried because the database or the store failed",
            registry=r,
        )
        self.node_outbox_backlog = Gauge(
            "linewatch_collector_node_outbox_backlog",
            "Messages waiting in a node's outbox, from its newest status",
            ["site", "line", "node"],
            registry=r,
        )


def parse_listen_address(text: str) -> tuple[str, int]:
    """``:9200`` or ``0.0.0.0:9200`` → (host, port); an empty host means every interface.

    Raises:
        ConfigError: no port, or one out of range.
    """
    host, _, port_text = text.rpartition(":")
    if not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        msg = f"metrics address {text!r}: expected [HOST]:PORT, e.g. :9200 or 127.0.0.1:9200"
        raise ConfigError(msg)
    return host.strip("[]") or "0.0.0.0", int(port_text)


def serve_collector_metrics(metrics: CollectorMetrics, address: str) -> int:
    """Serve ``metrics`` at ``http://address/metrics`` in a daemon thread; return the port.

    Raises:
        ConfigError: a bad address, or a port that cannot be bound.
    """
    host, port = parse_listen_address(address)
    try:
        server, _thread = start_http_server(port, addr=host, registry=metrics.registry)
    except OSError as exc:
        msg = f"metrics address {address!r}: cannot listen ({exc}); pick a free port"
        raise ConfigError(msg) from exc
    bound = int(server.server_address[1])
    logger.info("collector metrics serving address=%s:%d", host, bound)
    return bound
