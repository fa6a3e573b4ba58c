"""The node's gRPC face: InspectionService, grpc.health.v1, reflection.

Servicers are thin (message -> domain call -> message); one interceptor turns
domain errors into status codes. Streams are pipelined: a reader thread takes
requests off the wire and hands each to the inspection pool, which decodes it
and queues it with the inspector's batcher while earlier ones are still running
(ONNX Runtime and OpenCV release the GIL); frames waiting together run as one
batch, and responses go back in request order.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from linewatch.v1 import (
    inspection_pb2,
    inspection_pb2_grpc,
    model_service_pb2,
    model_service_pb2_grpc,
)

from edge.admission import AdmissionLimits, CallGate, limits_for
from edge.authz import node_transport
from edge.frames import VerdictSink
from edge.inspection_messages import model_ref, submit_request, to_response
from edge.inspector import Inspection, Inspector, PendingInspection
from edge.metrics import NodeMetrics
from edge.model_service import ModelServiceServicer, NothingToRollBack, ParityFailed
from edge.model_store import UnknownBundle
from edge.runtime.errors import (
    BundleError,
    ConfigError,
    ImageDecodeError,
    ImageTooLarge,
    NoModelLoaded,
)
from edge.runtime.signing import BundleSignatureError
from edge.settings import EdgeSettings
from edge.uploads import StagingFull, UploadCorrupt, UploadRejected

__all__ = [
    "MODEL_SERVICE_NAME",
    "SERVICE_NAME",
    "ErrorMappingInterceptor",
    "InspectionServicer",
    "NodeServer",
    "build_server",
    "status_for",
]

logger = logging.getLogger(__name__)

SERVICE_NAME = inspection_pb2.DESCRIPTOR.services_by_name["InspectionService"].full_name
MODEL_SERVICE_NAME = model_service_pb2.DESCRIPTOR.services_by_name["ModelService"].full_name
_OUR_METHODS = (f"/{SERVICE_NAME}/", f"/{MODEL_SERVICE_NAME}/")
_INTERNAL_MESSAGE = "internal error on the node; the node log has the details"
_Admitted = tuple[inspection_pb2.InspectRequest, PendingInspection]


def status_for(exc: BaseException) -> tuple[grpc.StatusCode, str]:
    """The gRPC status for a domain error; anything unexpected is INTERNAL, generic."""
    if isinstance(exc, ImageDecodeError):
        return grpc.StatusCode.INVALID_ARGUMENT, str(exc)
    if isinstance(exc, ImageTooLarge):
        return grpc.StatusCode.RESOURCE_EXHAUSTED, str(exc)
    if isinstance(exc, NoModelLoaded | ParityFailed | NothingToRollBack | UploadRejected):
        return grpc.StatusCode.FAILED_PRECONDITION, str(exc)
    return _model_status_for(exc)


def _model_status_for(exc: BaseException) -> tuple[grpc.StatusCode, str]:
    """Statuses of ModelService's errors: what a deployer needs to tell failures apart."""
    if isinstance(exc, BundleSignatureError):
        return grpc.StatusCode.PERMISSION_DENIED, str(exc)
    if isinstance(exc, UploadCorrupt):
        return grpc.StatusCode.DATA_LOSS, str(exc)
    if isinstance(exc, BundleError):
        return grpc.StatusCode.INVALID_ARGUMENT, str(exc)
    if isinstance(exc, StagingFull):
        return grpc.StatusCode.RESOURCE_EXHAUSTED, str(exc)
    if isinstance(exc, UnknownBundle):
        return grpc.StatusCode.NOT_FOUND, str(exc)
    return grpc.StatusCode.INTERNAL, _INTERNAL_MESSAGE


class ErrorMappingInterceptor(grpc.ServerInterceptor):  # type: ignore[misc]
    """Maps exceptions out of InspectionService methods to status codes."""

    def __init__(
        self, metrics: NodeMetrics | None = None, limits: AdmissionLimits | None = None
    ) -> None:
        self.metrics = metrics
        limits = limits or limits_for(8)
        self._gates = {
            f"/{SERVICE_NAME}/": CallGate("inspection", limits.inspection_calls),
            f"/{MODEL_SERVICE_NAME}/": CallGate("model service", limits.model_calls),
        }

    def _gate(self, method: str) -> CallGate:
        return next(gate for prefix, gate in self._gates.items() if method.startswith(prefix))

    def intercept_service(
        self, continuation: Callable[[Any], Any], handler_call_details: Any
    ) -> Any:
        """Wrap our service's handlers; health and reflection pass through untouched."""
        handler = continuation(handler_call_details)
        method = str(handler_call_details.method)
        if handler is None or not method.startswith(_OUR_METHODS):
            return handler
        codec = {
            "request_deserializer": handler.request_deserializer,
            "response_serializer": handler.response_serializer,
        }
        if handler.unary_unary is not None:
            return grpc.unary_unary_rpc_method_handler(
                self._wrap_unary(handler.unary_unary, method), **codec
            )
        if handler.stream_stream is not None:
            return grpc.stream_stream_rpc_method_handler(
                self._wrap_stream(handler.stream_stream, method), **codec
            )
        if handler.stream_unary is not None:
            return grpc.stream_unary_rpc_method_handler(
                self._wrap_unary(handler.stream_unary, method), **codec
            )
        return handler

    def _abort(self, context: grpc.ServicerContext, exc: Exception, method: str) -> None:
        code, message = status_for(exc)
        if code is grpc.StatusCode.INTERNAL:
            logger.error("unexpected error method=%s", method, exc_info=exc)
        if self.metrics:
            self.metrics.requests_failed.labels(code=code.name).inc()
        context.abort(code, message)

    def _admit(self, gate: CallGate, context: grpc.ServicerContext) -> None:
        if not gate.try_enter():
            if self.metrics:
                self.metrics.requests_failed.labels(code="RESOURCE_EXHAUSTED").inc()
            context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, gate.refusal())

    def _wrap_unary(self, behavior: Callable[..., Any], method: str) -> Callable[..., Any]:
        gate = self._gate(method)

        def unary(request: Any, context: grpc.ServicerContext) -> Any:
            self._admit(gate, context)
            try:
                return behavior(request, context)
            except Exception as exc:  # mapped to a status; INTERNAL ones are logged
                self._abort(context, exc, method)
                raise  # unreachable: abort raises
            finally:
                gate.leave()

        return unary

    def _wrap_stream(self, behavior: Callable[..., Any], method: str) -> Callable[..., Any]:
        gate = self._gate(method)

        def stream(request_iterator: Any, context: grpc.ServicerContext) -> Iterator[Any]:
            self._admit(gate, context)
            try:
                yield from behavior(request_iterator, context)
            except Exception as exc:  # mapped to a status; INTERNAL ones are logged
                self._abort(context, exc, method)
            finally:
                gate.leave()

        return stream


class InspectionServicer(inspection_pb2_grpc.InspectionServiceServicer):
    """Inspect, InspectStream and GetModelInfo over the shared ``Inspector``."""

    def __init__(
        self,
        inspector: Inspector,
        pool: ThreadPoolExecutor,
        *,
        sink: VerdictSink | None = None,
        metrics: NodeMetrics | None = None,
        stream_window: int = 4,
    ) -> None:
        self.inspector = inspector
        self.pool = pool
        self.sink = sink
        self.metrics = metrics
        self.stream_window = stream_window

    def Inspect(
        self, request: inspection_pb2.InspectRequest, context: grpc.ServicerContext
    ) -> inspection_pb2.InspectResponse:
        """One image in, one verdict out."""
        return self._handle(request)

    def InspectStream(
        self, request_iterator: Iterator[inspection_pb2.InspectRequest], context: Any
    ) -> Iterator[inspection_pb2.InspectResponse]:
        """Responses in request order; up to ``stream_window`` frames in flight.

        The pool decodes each frame and queues it with the batcher, so the frames of
        the window that are waiting at one moment run through the model together.
        """
        pending: queue.Queue[Future[_Admitted] | None] = queue.Queue(maxsize=self.stream_window)
        stop = threading.Event()
        reader = threading.Thread(
            target=self._read_stream,
            args=(request_iterator, pending, stop),
            name="inspect-stream-reader",
            daemon=True,
        )
        reader.start()
        try:
            while (future := pending.get()) is not None:
                request, ticket = future.result()
                yield self._respond(request, ticket.result())
        finally:
            stop.set()

    def _read_stream(
        self,
        request_iterator: Iterator[inspection_pb2.InspectRequest],
        pending: queue.Queue[Future[_Admitted] | None],
        stop: threading.Event,
    ) -> None:
        try:
            for request in request_iterator:
                future = self.pool.submit(self._admit, request)
                if not _put_until(pending, future, stop):
                    return
        except (grpc.RpcError, ValueError) as exc:  # the call ended under us (cancel, deadline)
            logger.debug("stream ended while reading requests reason=%r", exc)
        finally:
            _put_until(pending, None, stop)

    def _admit(self, request: inspection_pb2.InspectRequest) -> _Admitted:
        """Decode and queue one streamed frame, then help run batches while cores are free."""
        ticket = submit_request(self.inspector, request)
        self.inspector.batcher.help()
        return request, ticket

    def GetModelInfo(
        self, request: inspection_pb2.GetModelInfoRequest, context: grpc.ServicerContext
    ) -> inspection_pb2.ModelInfo:
        """The active model, its thresholds and providers."""
        active = self.inspector.slot.current()
        manifest = active.bundle.manifest
        return inspection_pb2.ModelInfo(
            model=model_ref(active.identity),
            input_height=manifest.input.height,
            input_width=manifest.input.width,
            threshold=active.policy.threshold,
            uncertain_low=active.policy.uncertain_low,
            providers=list(active.engine.providers),
            created_at=manifest.created_at,
            decision_method=active.policy.method,
        )

    def _handle(self, request: inspection_pb2.InspectRequest) -> inspection_pb2.InspectResponse:
        return self._respond(request, submit_request(self.inspector, request).result())

    def _respond(
        self, request: inspection_pb2.InspectRequest, inspection: Inspection
    ) -> inspection_pb2.InspectResponse:
        if self.metrics:
            self.metrics.observe(inspection.frame, inspection.inference_ms, "grpc")
        if self.sink:
            self.sink.handle(inspection.frame)
        return to_response(request, inspection)


def _put_until(target: queue.Queue[Any], item: Any, stop: threading.Event) -> bool:
    """Put into a bounded queue unless ``stop`` is set first; return whether it went in."""
    while not stop.is_set():
        try:
            target.put(item, timeout=0.1)
        except queue.Full:
            continue
        return True
    return False


class NodeServer:
    """A started gRPC server with its health servicer and inspection pool."""

    def __init__(
        self, server: grpc.Server, health_servicer: health.HealthServicer, pool: ThreadPoolExecutor
    ) -> None:
        self.server = server
        self.health = health_servicer
        self.pool = pool

    def set_serving(self, serving: bool) -> None:
        """Report SERVING or NOT_SERVING for the node and the InspectionService."""
        status = (
            health_pb2.HealthCheckResponse.SERVING
            if serving
            else health_pb2.HealthCheckResponse.NOT_SERVING
        )
        for service in ("", SERVICE_NAME):
            self.health.set(service, status)

    def stop(self, grace_s: float) -> None:
        """Say NOT_SERVING, let in-flight calls finish within ``grace_s``, then stop."""
        self.health.enter_graceful_shutdown()
        self.server.stop(grace_s).wait()
        self.pool.shutdown(wait=True, cancel_futures=True)
        logger.info("grpc server stopped grace_s=%.1f", grace_s)

    def wait_for_termination(self, timeout_s: float | None = None) -> bool:
        """Block until the server stops; True if it did within ``timeout_s``."""
        return bool(self.server.wait_for_termination(timeout_s))


def build_server(
    inspector: Inspector,
    settings: EdgeSettings,
    *,
    sink: VerdictSink | None = None,
    metrics: NodeMetrics | None = None,
    address: str | None = None,
    model_service: ModelServiceServicer | None = None,
) -> tuple[NodeServer, int]:
    """Build and start the node's gRPC server.

    Health is NOT_SERVING until the inspector's slot holds a warmed model, and
    follows every swap after that.

    Args:
        inspector: the shared inspection path.
        settings: worker counts, stream window, message size limit, address.
        sink: receives every inspected frame (the node's fan-out).
        metrics: the node's metrics.
        address: overrides ``settings.grpc`` (tests pass ``127.0.0.1:0``).
        model_service: serves ModelService on the same port when given (``--model-dir``).

    Returns:
        The started server and the port it bound.

    Raises:
        ConfigError: the address cannot be bound, or TLS is not set up (``edge.authz``).
    """
    transport = node_transport(settings, metrics)  # refuses before anything is started
    pool = ThreadPoolExecutor(settings.inference_workers, thread_name_prefix="inspect")
    limits = [
        ("grpc.max_receive_message_length", settings.max_message_bytes),
        ("grpc.max_send_message_length", settings.max_message_bytes),
    ]
    server = grpc.server(
        ThreadPoolExecutor(settings.grpc_workers, thread_name_prefix="grpc"),
        interceptors=[  # authorisation first: a refused caller takes no admission slot
            *transport.interceptors,
            ErrorMappingInterceptor(metrics, limits_for(settings.grpc_workers)),
        ],
        options=limits,
    )
    servicer = InspectionServicer(
        inspector, pool, sink=sink, metrics=metrics, stream_window=settings.stream_window
    )
    inspection_pb2_grpc.add_InspectionServiceServicer_to_server(servicer, server)  # type: ignore[no-untyped-call]
    names = [SERVICE_NAME]
    if model_service is not None:
        model_service_pb2_grpc.add_ModelServiceServicer_to_server(model_service, server)  # type: ignore[no-untyped-call]
        names.append(MODEL_SERVICE_NAME)
    health_servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection(
        (
            *names,
            health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
            reflection.SERVICE_NAME,
        ),
        server,
    )
    bind = address or settings.grpc
    try:
        if transport.credentials is None:
            port = server.add_insecure_port(bind)
        else:
            port = server.add_secure_port(bind, transport.credentials)
    except RuntimeError as exc:
        port = 0
        logger.debug("bind failed address=%s reason=%s", bind, exc)
    if port == 0:
        pool.shutdown(wait=False)
        msg = f"grpc: cannot listen on {bind}; is the port in use or the host wrong?"
        raise ConfigError(msg)
    node_server = NodeServer(server, health_servicer, pool)
    node_server.set_serving(False)
    if model_service is not None:  # pushes are welcome before any model is active
        health_servicer.set(MODEL_SERVICE_NAME, health_pb2.HealthCheckResponse.SERVING)
    inspector.slot.add_listener(lambda active: node_server.set_serving(active is not None))
    server.start()
    tls = transport.credentials is not None
    logger.info("grpc serving address=%s port=%d mutual_tls=%s", bind, port, tls)
    return node_server, port
