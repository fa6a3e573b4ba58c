"""ModelService: push, activate, roll back and list the node's models over gRPC.

``ModelManager`` holds the rules: a stored bundle is loaded, warmed up and put
through the parity gate (its golden images must come out as the trainer
computed them) before the slot swaps to it, so in-flight and streaming
inspections finish on the old model and the next frame meets a warm new one.
Any failure leaves the old model serving. The servicer is thin; domain errors
become status codes in ``edge.server``'s interceptor.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import TypeVar

import grpc
from linewatch.v1 import common_pb2, model_service_pb2, model_service_pb2_grpc

from edge.background import lower_this_threads_priority, run_in_fresh_thread
from edge.frames import ModelIdentity
from edge.model_slot import ActiveModel, ModelSlot
from edge.model_store import ModelStore
from edge.runtime.bundle import ModelBundle
from edge.runtime.engine import EngineOptions, InferenceEngine
from edge.runtime.errors import (
    ActivationFailed,
    EngineError,
    LinewatchError,
    NothingToRollBack,
    ParityFailed,
)
from edge.runtime.golden import DEFAULT_MAP_TOLERANCE, DEFAULT_SCORE_TOLERANCE, check_golden
from edge.uploads import UploadRejected

__all__ = [
    "Activation",
    "ActivationFailed",
    "ModelManager",
    "ModelServiceServicer",
    "NothingToRollBack",
    "ParityFailed",
]

logger = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True)
class Activation:
    """The outcome of an activation or rollback, for the deployer's record."""

    active: ModelIdentity
    previous: ModelIdentity | None
    detail: str


class ModelManager:
    """Activates stored bundles into the slot behind the parity gate, one at a time."""

    def __init__(
        self,
        slot: ModelSlot,
        store: ModelStore,
        options: EngineOptions,
        *,
        score_tolerance: float = DEFAULT_SCORE_TOLERANCE,
        map_tolerance: float = DEFAULT_MAP_TOLERANCE,
        require_golden: bool = True,
    ) -> None:
        self.slot = slot
        self.store = store
        self.options = options
        self.score_tolerance = score_tolerance
        self.map_tolerance = map_tolerance
        self.require_golden = require_golden
        self._lock = threading.Lock()  # one activation at a time; inspections never wait

    def prepare(self, bundle: ModelBundle) -> tuple[ActiveModel, str]:
        """Load, warm up and parity-check a bundle without touching the slot.

        Raises:
            ActivationFailed: ONNX Runtime cannot load or run it here.
            ParityFailed: no golden images (when required) or results beyond tolerance.
        """
        if self.require_golden and not bundle.manifest.golden:
            msg = (
                f"bundle {bundle.label}: carries no golden images, so this node cannot check "
                "it reproduces the trainer's results; export it with `linewatch train`"
            )
            raise ParityFailed(msg)
        return run_in_fresh_thread(lambda: self._prepare(bundle), name="model-prepare")

    def _prepare(self, bundle: ModelBundle) -> tuple[ActiveModel, str]:
        # The staging session has one intra-op thread: ONNX Runtime then runs on the
        # calling thread only, so warm-up and parity, at background priority, leave
        # the live session its cores. Threads inherit their creator's nice value, so a
        # session with its own thread pool is never built here: it would serve at
        # background priority once live. The session is created before the priority
        # drops: creating it holds the GIL, and a niced thread preempted while holding
        # it stalls live frames (measured: p99 during swaps rose from ~1.0x to ~1.6x).
        staging_options = replace(self.options, intra_op_threads=1)
        try:
            engine = InferenceEngine(bundle, staging_options)
            lower_this_threads_priority()  # warm-up and parity yield to live inspections
            engine.warm_up()
        except EngineError as exc:
            raise ActivationFailed(str(exc)) from exc
        check = check_golden(
            engine, bundle, score_tolerance=self.score_tolerance, map_tolerance=self.map_tolerance
        )
        if not check.passed:
            msg = (
                f"bundle {bundle.label}: {check.detail} on {','.join(engine.providers)}; "
                "the old model keeps serving. Check the ONNX Runtime version and providers"
            )
            raise ParityFailed(msg)
        if self.options.intra_op_threads != 1:
            engine = run_in_fresh_thread(
                lambda: _live_engine(bundle, self.options), name="model-live"
            )
        return ActiveModel.from_engine(engine), check.detail

    def activate(self, name: str, version: str) -> Activation:
        """Make a stored bundle the active model; the old one serves until the swap.

        Raises:
            UnknownBundle: not stored on this node.
            BundleError: its files or signature no longer verify, or the checks above fail.
            ReleaseRefused: its release expired, or it is older than the active version
                and not released as a signed rollback.
        """
        with self._lock:
            return self._switch(name, version, rollback=False)

    def rollback(self) -> Activation:
        """Go back to the bundle that was active before the current one.

        Raises:
            NothingToRollBack: no earlier bundle is held.
        """
        with self._lock:
            target = self.store.previous_ref()
            if target is None:
                msg = "rollback: no earlier bundle is held on this node; push the version you want"
                raise NothingToRollBack(msg)
            return self._switch(*target, rollback=True)

    def _switch(self, name: str, version: str, *, rollback: bool) -> Activation:
        current = self.slot.current() if self.slot.loaded else None
        previous = current.identity if current else None
        if current and (current.identity.name, current.identity.version) == (name, version):
            self.store.set_active(name, version, rollback=rollback)
            return Activation(current.identity, previous, f"{name}:{version} is already active")
        bundle = self.store.open_bundle(name, version)
        if not rollback:  # Rollback walks back to what ran here; Activate needs a live release
            self.store.check_activation(bundle)
        active, detail = self.prepare(bundle)
        self.slot.swap(active)
        self.store.set_active(name, version, rollback=rollback)
        logger.info(
            "model activated model=%s:%s previous=%s rollback=%s detail=%r",
            name,
            version,
            f"{previous.name}:{previous.version}" if previous else "none",
            rollback,
            detail,
        )
        return Activation(active.identity, previous, detail)

    def restore(self) -> ActiveModel | None:
        """Bring back the bundle that was active before a restart; None if there is none.

        A bundle that no longer verifies is logged and left out: the node then
        waits NOT_SERVING for a push rather than run something unchecked.
        """
        ref = self.store.active_ref()
        if ref is None:
            return None
        with self._lock:
            try:
                active, detail = self.prepare(self.store.open_bundle(*ref))
            except LinewatchError as exc:
                logger.error("active bundle not restored model=%s:%s reason=%s", *ref, exc)
                return None
            self.slot.swap(active)
        logger.info("model restored model=%s:%s detail=%r", *ref, detail)
        return active


def _live_engine(bundle: ModelBundle, options: EngineOptions) -> InferenceEngine:
    """The serving session, built at normal priority so its thread pool serves at full speed.

    Only for multi-threaded sessions, and only after the staging session passed
    parity: this one repeats the load and a warm-up at the live priority, which
    is the part of a swap that still shares the cores with live frames.

    Raises:
        ActivationFailed: ONNX Runtime cannot build it with these options.
    """
    try:
        engine = InferenceEngine(bundle, options)
        engine.warm_up()
    except EngineError as exc:
        raise ActivationFailed(str(exc)) from exc
    return engine


def _gently(work: Callable[[], T]) -> T:
    """Run ``work`` at background priority (call it in a throwaway thread)."""
    lower_this_threads_priority()
    return work()


def _ref(identity: ModelIdentity | None) -> common_pb2.ModelRef | None:
    if identity is None:
        return None
    return common_pb2.ModelRef(
        name=identity.name, version=identity.version, model_sha256=identity.model_sha256
    )


class ModelServiceServicer(model_service_pb2_grpc.ModelServiceServicer):
    """Push, UploadStatus, Activate, Rollback and List over a ``ModelManager``."""

    def __init__(self, manager: ModelManager) -> None:
        self.manager = manager
        self.store = manager.store

    def Push(
        self, request_iterator: Iterator[model_service_pb2.PushChunk], context: grpc.ServicerContext
    ) -> model_service_pb2.PushResponse:
        """Store chunks; when the last byte is in, verify and stage the bundle."""
        upload_id, received = "", 0
        try:
            for chunk in request_iterator:
                upload_id = chunk.upload_id
                received = self.store.write_chunk(
                    upload_id,
                    chunk.offset,
                    chunk.data,
                    total_size=chunk.total_size,
                    sha256=chunk.sha256,
                )
        except grpc.RpcError:  # the sender went away: what arrived stays for a resume
            logger.info("push stream broken upload_id=%s received=%d", upload_id, received)
            return model_service_pb2.PushResponse(upload_id=upload_id, received_bytes=received)
        if not upload_id:
            msg = "push: the stream carried no chunk; send at least one with an upload_id"
            raise UploadRejected(msg)
        if not self.store.is_complete(upload_id):
            return model_service_pb2.PushResponse(upload_id=upload_id, received_bytes=received)
        bundle = run_in_fresh_thread(
            lambda: _gently(lambda: self.store.complete(upload_id)), name="model-stage"
        )
        manifest = bundle.manifest
        return model_service_pb2.PushResponse(
            upload_id=upload_id,
            received_bytes=received,
            complete=True,
            model=common_pb2.ModelRef(
                name=manifest.name, version=manifest.version, model_sha256=manifest.model_sha256
            ),
        )

    def UploadStatus(
        self, request: model_service_pb2.UploadStatusRequest, context: grpc.ServicerContext
    ) -> model_service_pb2.UploadStatusResponse:
        """Bytes held for an upload: where a broken Push resumes."""
        return model_service_pb2.UploadStatusResponse(
            upload_id=request.upload_id,
            received_bytes=self.store.received_bytes(request.upload_id),
        )

    def Activate(
        self, request: model_service_pb2.ActivateRequest, context: grpc.ServicerContext
    ) -> model_service_pb2.ActivateResponse:
        """Verify, warm up, parity-check and swap in a staged bundle."""
        return self._response(self.manager.activate(request.model.name, request.model.version))

    def Rollback(
        self, request: model_service_pb2.RollbackRequest, context: grpc.ServicerContext
    ) -> model_service_pb2.ActivateResponse:
        """Swap back to the previously active bundle."""
        return self._response(self.manager.rollback())

    def List(
        self, request: model_service_pb2.ListRequest, context: grpc.ServicerContext
    ) -> model_service_pb2.ListResponse:
        """Stored bundles, newest first, and the active model."""
        slot = self.manager.slot
        active = slot.current().identity if slot.loaded else None
        entries = [
            model_service_pb2.BundleEntry(
                model=common_pb2.ModelRef(
                    name=item.name, version=item.version, model_sha256=item.model_sha256
                ),
                active=active is not None
                and (active.name, active.version) == (item.name, item.version),
                staged_at=item.staged_at,
            )
            for item in self.store.bundles()
        ]
        return model_service_pb2.ListResponse(bundles=entries, active=_ref(active))

    @staticmethod
    def _response(result: Activation) -> model_service_pb2.ActivateResponse:
        return model_service_pb2.ActivateResponse(
            active=_ref(result.active), previous=_ref(result.previous), detail=result.detail
        )
