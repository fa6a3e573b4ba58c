"""Prometheus metrics of one node, in the node's own registry.

A registry per node (not the process-global one) keeps tests and several nodes
in one process from colliding; ``serve_metrics`` exposes it over HTTP.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from wsgiref.simple_server import WSGIServer

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    start_http_server,
)

from edge.frames import InspectedFrame
from edge.model_slot import ActiveModel

__all__ = ["MetricsServer", "NodeMetrics", "serve_metrics"]

logger = logging.getLogger(__name__)

_LATENCY_BUCKETS_S = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
)  # fmt: skip
_BATCH_SIZE_BUCKETS = (1, 2, 3, 4, 6, 8, 12, 16, 32, 64)


class NodeMetrics:
    """The node's counters, gauges and histograms."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry(auto_describe=True)
        r = self.registry
        self.frames_in = Counter("linewatch_frames_in", "Frames read from the camera", registry=r)
        self.frames_processed = Counter(
            "linewatch_frames_processed", "Frames inspected", ["source"], registry=r
        )
        self.frames_dropped = Counter(
            "linewatch_frames_dropped",
            "Camera frames dropped because inference was slower than the camera",
            registry=r,
        )
        self.verdicts = Counter(
            "linewatch_verdicts", "Verdicts given", ["verdict", "source"], registry=r
        )
        self.inference_latency = Histogram(
            "linewatch_inference_latency_seconds",
            "ONNX Runtime time per frame",
            buckets=_LATENCY_BUCKETS_S,
            registry=r,
        )
        self.inspection_latency = Histogram(
            "linewatch_inspection_latency_seconds",
            "Decode, resize, inference and decision per frame",
            buckets=_LATENCY_BUCKETS_S,
            registry=r,
        )
        self.inference_batch_size = Histogram(
            "linewatch_inference_batch_size",
            "Frames per ONNX Runtime run (micro-batching)",
            buckets=_BATCH_SIZE_BUCKETS,
            registry=r,
        )
        self.model_info = Gauge(
            "linewatch_model_info",
            "1 for the active model",
            ["name", "version", "providers"],
            registry=r,
        )
        self.camera_connected = Gauge(
            "linewatch_camera_connected", "1 while the camera source is open", registry=r
        )
        self.camera_reconnects = Counter(
            "linewatch_camera_reconnects", "Attempts to reopen the camera source", registry=r
        )
        self.sink_dropped = Counter(
            "linewatch_sink_dropped",
            "Normal frames not handed to the sinks because their queue was full",
            registry=r,
        )
        self.record_failures = Counter(
            "linewatch_record_failures",
            "Flagged frames the local record could not store (disk full)",
            registry=r,
        )
        self.requests_failed = Counter(
            "linewatch_grpc_errors", "gRPC calls ended with an error", ["code"], registry=r
        )
        self._model_lock = threading.Lock()

    def observe(self, frame: InspectedFrame, inference_ms: float, source: str) -> None:
        """Count one inspected frame from ``source`` (``camera`` or ``grpc``)."""
        self.frames_processed.labels(source=source).inc()
        self.verdicts.labels(verdict=frame.verdict.value, source=source).inc()
        self.inference_latency.observe(inference_ms / 1000.0)
        self.inspection_latency.observe(frame.latency_ms / 1000.0)

    def set_model(self, active: ActiveModel | None) -> None:
        """Show the active model as the only ``linewatch_model_info`` series at 1."""
        with self._model_lock:
            self.model_info.clear()
            if active is not None:
                self.model_info.labels(
                    name=active.identity.name,
                    version=active.identity.version,
                    providers=",".join(active.engine.providers),
                ).set(1)

    def total(self, name: str) -> float:
        """Sum of a counter over all its labels, e.g. ``total("linewatch_frames_processed")``."""
        return sum(
            sample.value
            for family in self.registry.collect()
            if family.name == name
            for sample in family.samples
            if sample.name == f"{name}_total"
        )

    def render(self) -> bytes:
        """The exposition text, as /metrics serves it."""
        return generate_latest(self.registry)


@dataclass
class MetricsServer:
    """A running /metrics HTTP endpoint."""

    server: WSGIServer
    thread: threading.Thread

    @property
    def port(self) -> int:
        """The bound port (useful when asked for port 0)."""
        return int(self.server.server_address[1])

    def stop(self) -> None:
        """Stop serving and join the thread."""
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5.0)


def serve_metrics(metrics: NodeMetrics, host: str, port: int) -> MetricsServer:
    """Expose ``metrics`` at ``http://host:port/metrics`` in a background thread."""
    server, thread = start_http_server(port, addr=host, registry=metrics.registry)
    running = MetricsServer(server=server, thread=thread)
    logger.info("metrics serving address=%s:%d", host, running.port)
    return running
