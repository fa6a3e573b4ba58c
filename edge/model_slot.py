"""The node's one active model: engine, bundle and policy, swapped atomically.

An inspection takes a reference to the ``ActiveModel`` once and uses it to the
end, so a swap never pulls an engine out from under a running request; the next
inspection sees the new model. Listeners (gRPC health, metrics) hear of every
change.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

from edge.frames import ModelIdentity
from edge.runtime.bundle import ModelBundle
from edge.runtime.engine import EngineOptions, InferenceEngine
from edge.runtime.errors import NoModelLoaded
from edge.runtime.policy import DecisionPolicy

__all__ = ["ActiveModel", "ModelListener", "ModelSlot", "activate_bundle"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ActiveModel:
    """A loaded, warmed model and what a verdict needs from its manifest."""

    bundle: ModelBundle
    engine: InferenceEngine
    policy: DecisionPolicy
    identity: ModelIdentity

    @classmethod
    def from_engine(cls, engine: InferenceEngine) -> ActiveModel:
        """Wrap an engine built over a bundle."""
        manifest = engine.bundle.manifest
        identity = ModelIdentity(
            name=manifest.name, version=manifest.version, model_sha256=manifest.model_sha256
        )
        return cls(bundle=engine.bundle, engine=engine, policy=manifest.decision, identity=identity)


ModelListener = Callable[[ActiveModel | None], None]


class ModelSlot:
    """Holds the active model; thread-safe, lock held only to swap a reference."""

    def __init__(self) -> None:
        self._lock = threading.Condition()
        self._active: ActiveModel | None = None
        self._listeners: list[ModelListener] = []

    def current(self) -> ActiveModel:
        """Return the active model for one inspection.

        Raises:
            NoModelLoaded: no model has been activated yet.
        """
        active = self._active  # one reference read: atomic under the GIL
        if active is None:
            msg = "no model is loaded on this node yet; push a bundle or start with --bundle"
            raise NoModelLoaded(msg)
        return active

    @property
    def loaded(self) -> bool:
        """Whether a model is active."""
        return self._active is not None

    def swap(self, new: ActiveModel | None) -> ActiveModel | None:
        """Make ``new`` the active model (None empties the slot) and return the old one.

        In-flight inspections finish on the model they started with.
        """
        with self._lock:
            old, self._active = self._active, new
            listeners = list(self._listeners)
            self._lock.notify_all()
        label = new.bundle.label if new else "none"
        logger.info(
            "model swapped model=%s previous=%s", label, old.bundle.label if old else "none"
        )
        for listener in listeners:
            listener(new)
        return old

    def wait_loaded(self, timeout_s: float) -> bool:
        """Block until a model is active or ``timeout_s`` passes; return whether one is."""
        with self._lock:
            return self._lock.wait_for(lambda: self._active is not None, timeout=timeout_s)

    def add_listener(self, listener: ModelListener) -> None:
        """Call ``listener`` now with the active model and again after every swap."""
        with self._lock:
            self._listeners.append(listener)
            active = self._active
        listener(active)


def activate_bundle(slot: ModelSlot, bundle: ModelBundle, options: EngineOptions) -> ActiveModel:
    """Build an engine over ``bundle``, warm it up, then swap it into ``slot``.

    Warm-up happens before the swap, so requests never meet a cold engine.

    Raises:
        EngineError: ONNX Runtime cannot load or run the model.
    """
    engine = InferenceEngine(bundle, options)
    engine.warm_up()
    active = ActiveModel.from_engine(engine)
    slot.swap(active)
    return active
