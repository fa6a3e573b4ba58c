"""The edge node: camera loop, sink fan-out, gRPC server and metrics, wired together.

The camera loop takes frames from the ``CameraReader`` (which drops the oldest
live frames when we are slow), inspects each with the model the slot holds at
that moment, and hands the result to the sinks through one bounded background
queue, so a slow disk or broker never slows the camera.
"""

from __future__ import annotations

import logging
import queue
import socket
import threading
from collections.abc import Sequence
from pathlib import Path

from edge.camera import Backoff, CameraReader, FrameSource, open_source
from edge.frames import Heartbeat, InspectedFrame, VerdictSink
from edge.inspector import Inspector
from edge.metrics import MetricsServer, NodeMetrics, serve_metrics
from edge.model_service import ModelManager, ModelServiceServicer
from edge.model_slot import ActiveModel, ModelSlot, activate_bundle
from edge.model_store import ModelStore
from edge.recorder import LocalRecord
from edge.runtime.bundle import ModelBundle, load_bundle
from edge.runtime.engine import EngineOptions
from edge.runtime.errors import EngineError, NoModelLoaded
from edge.runtime.mqtt_link import NodeIdentity
from edge.runtime.policy import Verdict
from edge.runtime.signing import load_public_key
from edge.server import NodeServer, build_server
from edge.settings import EdgeSettings

__all__ = ["CameraLoop", "EdgeNode", "SinkDispatcher", "engine_options", "model_manager"]

logger = logging.getLogger(__name__)

_POLL_S = 0.2


def engine_options(settings: EdgeSettings) -> EngineOptions:
    """The engine options a node's settings ask for."""
    return EngineOptions(
        providers=tuple(settings.providers) if settings.providers else None,
        intra_op_threads=settings.intra_op_threads,
        inter_op_threads=settings.inter_op_threads,
        tensorrt_cache_dir=settings.tensorrt_cache_dir,
        tensorrt_fp16=settings.tensorrt_fp16,
        warmup_runs=settings.warmup_runs,
        warmup_batch_max=settings.batch_max,
    )


def model_manager(settings: EdgeSettings, slot: ModelSlot) -> ModelManager | None:
    """The model store and manager behind ModelService, when ``model_dir`` is set.

    Raises:
        ConfigError: the trusted key cannot be read, or there is none and
            ``allow_unsigned`` is off.
    """
    if settings.model_dir is None:
        return None
    trusted = load_public_key(settings.trusted_key) if settings.trusted_key else None
    quota = settings.model_dir_quota_mb
    store = ModelStore(
        settings.model_dir,
        trusted_key=trusted,
        allow_unsigned=settings.allow_unsigned,
        line=settings.line,
        node=settings.node,
        keep_bundles=settings.keep_bundles,
        quota_bytes=None if quota is None else int(quota * 1024 * 1024),
    )
    return ModelManager(
        slot,
        store,
        engine_options(settings),
        score_tolerance=settings.parity_score_tolerance,
        map_tolerance=settings.parity_map_tolerance,
        require_golden=settings.require_golden,
    )


class SinkDispatcher:
    """A ``VerdictSink`` that queues frames for other sinks and feeds them in a thread.

    Flagged frames wait for room (they must not be lost); a normal frame that
    finds the queue full is skipped and counted.
    """

    def __init__(
        self,
        sinks: Sequence[VerdictSink],
        *,
        maxsize: int = 256,
        metrics: NodeMetrics | None = None,
    ) -> None:
        self.sinks = list(sinks)
        self.metrics = metrics
        self.skipped = 0
        self._queue: queue.Queue[InspectedFrame | None] = queue.Queue(maxsize=maxsize)
        self._thread = threading.Thread(target=self._run, name="sink-dispatcher", daemon=True)
        self._thread.start()

    def handle(self, frame: InspectedFrame) -> None:
        """Queue one frame for every sink."""
        if frame.verdict is not Verdict.NORMAL:
            self._queue.put(frame)
            return
        try:
            self._queue.put_nowait(frame)
        except queue.Full:
            self.skipped += 1
            if self.metrics:
                self.metrics.sink_dropped.inc()

    def add_sink(self, sink: VerdictSink) -> None:
        """Add a sink while running; the next frame reaches it."""
        self.sinks = [
            *self.sinks,
            sink,
        ]  # one reference swap: the feeding thread never sees a half list

    def drain(self, timeout_s: float = 5.0) -> bool:
        """Wait until every queued frame reached the sinks; True if it did in time."""
        tasks_done = self._queue.all_tasks_done
        with tasks_done:
            return tasks_done.wait_for(lambda: self._queue.unfinished_tasks == 0, timeout_s)

    def close(self) -> None:
        """Deliver what is queued, stop the thread, close every sink."""
        self._queue.put(None)
        self._thread.join()
        for sink in self.sinks:
            sink.close()

    def _run(self) -> None:
        while (frame := self._queue.get()) is not None:
            for sink in self.sinks:
                try:
                    sink.handle(frame)
                except Exception:  # one failing sink must not starve the others
                    logger.exception(
                        "sink failed sink=%s frame=%s", type(sink).__name__, frame.frame_id
                    )
            self._queue.task_done()
        self._queue.task_done()


class CameraLoop:
    """Reads, inspects and fans out camera frames in its own thread."""

    def __init__(
        self,
        reader: CameraReader,
        inspector: Inspector,
        sink: VerdictSink,
        metrics: NodeMetrics | None = None,
    ) -> None:
        self.reader = reader
        self.inspector = inspector
        self.sink = sink
        self.metrics = metrics
        self.processed = 0
        self.finished = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="camera-loop", daemon=True)

    def start(self) -> None:
        """Start the reader and the loop."""
        self.reader.start()
        self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop reading and inspecting; the frame in hand is finished first."""
        self._stop.set()
        self.reader.stop(timeout_s)
        if self._thread.is_alive():
            self._thread.join(timeout_s)

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                if not self.inspector.slot.wait_loaded(_POLL_S):
                    continue
                frame = self.reader.get(_POLL_S)
                if frame is None:
                    if self.reader.finished:
                        return
                    continue
                try:
                    inspection = self.inspector.inspect_image(
                        frame.image,
                        frame_id=f"{frame.captured_at_ms}-{frame.index}",
                        captured_at_ms=frame.captured_at_ms,
                    )
                except (NoModelLoaded, EngineError) as exc:
                    logger.error("camera frame not inspected index=%d reason=%s", frame.index, exc)
                    continue
                self.processed += 1
                if self.metrics:
                    self.metrics.observe(inspection.frame, inspection.inference_ms, "camera")
                self.sink.handle(inspection.frame)
        finally:
            self.finished.set()
            logger.info("camera loop finished processed=%d", self.processed)


class EdgeNode:
    """Everything ``linewatch-edge serve`` runs, started and stopped as one."""

    def __init__(
        self,
        settings: EdgeSettings,
        *,
        source: FrameSource | None = None,
        sinks: Sequence[VerdictSink] | None = None,
        metrics: NodeMetrics | None = None,
    ) -> None:
        self.settings = settings
        self.identity = NodeIdentity(site=settings.site, line=settings.line, node=settings.node)
        self.metrics = metrics or NodeMetrics()
        self.slot = ModelSlot()
        self.slot.add_listener(self.metrics.set_model)
        self.inspector = Inspector(
            self.slot,
            max_pixels=settings.max_pixels,
            batch_max=settings.batch_max,
            batch_wait_ms=settings.batch_wait_ms,
            max_runs=settings.inference_workers,
            on_batch=self.metrics.inference_batch_size.observe,
        )
        self.models = model_manager(settings, self.slot)
        if sinks is None:
            sinks = [self._default_record()]
        self.dispatcher = SinkDispatcher(sinks, maxsize=settings.sink_queue, metrics=self.metrics)
        if source is None and settings.camera is not None:
            source = open_source(settings.camera, loop=settings.loop)
        self.camera: CameraLoop | None = None
        if source is not None:
            reader = CameraReader(
                source,
                queue_size=settings.camera_queue,
                backoff=Backoff(settings.reconnect_initial_s, settings.reconnect_max_s),
                metrics=self.metrics,
            )
            self.camera = CameraLoop(reader, self.inspector, self.dispatcher, self.metrics)
        self.server: NodeServer | None = None
        self.port = 0
        self.metrics_server: MetricsServer | None = None

    def _default_record(self) -> LocalRecord:
        return LocalRecord(
            self.settings.record_dir,
            keep_verdicts=self.settings.record_verdicts,
            quota_bytes=int(self.settings.record_quota_mb * 1024 * 1024),
            metrics=self.metrics,
        )

    def advertised_address(self) -> str:
        """Where the cloud reaches this node: the setting, else the listen host and real port."""
        if self.settings.advertise_address:
            return self.settings.advertise_address
        host = self.settings.grpc.rpartition(":")[0].strip("[]")
        if host in ("", "0.0.0.0", "::"):
            host = socket.getfqdn()
        return f"{host}:{self.port}"

    def _heartbeat(self) -> Heartbeat:
        return Heartbeat(
            frames_processed=int(self.metrics.total("linewatch_frames_processed")),
            frames_dropped=int(self.metrics.total("linewatch_frames_dropped")),
            model=self.slot.current().identity if self.slot.loaded else None,
        )

    def _mqtt_sink(self) -> VerdictSink:
        from edge.mqtt import MqttConfig, build_mqtt_sink

        settings = self.settings
        config = MqttConfig.from_url(
            str(settings.mqtt_url),
            username=settings.mqtt_user,
            password=settings.mqtt_login_password(),
            tls_ca=settings.mqtt_tls_ca,
            outbox_dir=settings.outbox_dir,
            outbox_quota_mb=settings.outbox_quota_mb,
        )
        address = self.advertised_address()
        logger.info(
            "publishing to MQTT url=%s node=%s grpc=%s",
            config.address,
            self.identity.node,
            address,
        )
        return build_mqtt_sink(config, self.identity, address, self._heartbeat)

    def load(self, bundle: ModelBundle | Path) -> ActiveModel:
        """Load, warm up and activate a bundle (a directory, a tar or a loaded bundle).

        Raises:
            BundleError: the bundle cannot be read or verified.
            EngineError: ONNX Runtime cannot run it.
        """
        loaded = bundle if isinstance(bundle, ModelBundle) else load_bundle(bundle)
        return activate_bundle(self.slot, loaded, engine_options(self.settings))

    def restore(self) -> ActiveModel | None:
        """Bring back the model that was active in ``model_dir`` before a restart, if any."""
        return self.models.restore() if self.models is not None else None

    def start(self, *, grpc_address: str | None = None) -> int:
        """Start gRPC, metrics and the camera loop; return the gRPC port."""
        self.server, self.port = build_server(
            self.inspector,
            self.settings,
            sink=self.dispatcher,
            metrics=self.metrics,
            address=grpc_address,
            model_service=ModelServiceServicer(self.models) if self.models else None,
        )
        if self.settings.mqtt_url is not None:
            self.dispatcher.add_sink(self._mqtt_sink())
        address = self.settings.metrics_address
        if address is not None:
            self.metrics_server = serve_metrics(self.metrics, *address)
        if self.camera is not None:
            self.camera.start()
        return self.port

    def stop(self, grace_s: float | None = None) -> None:
        """Graceful stop: NOT_SERVING, finish in-flight calls, stop the camera, flush sinks."""
        grace = self.settings.shutdown_grace_s if grace_s is None else grace_s
        if self.server is not None:
            self.server.stop(grace)
        if self.camera is not None:
            self.camera.stop()
        self.inspector.drain(grace)
        self.dispatcher.close()
        if self.metrics_server is not None:
            self.metrics_server.stop()
        logger.info("node stopped node=%s", self.identity.node)
