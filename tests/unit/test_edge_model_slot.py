"""ModelSlot: empty raises NoModelLoaded; swap is atomic for in-flight work."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from edge.model_slot import ActiveModel, ModelSlot, activate_bundle
from edge.runtime.bundle import ModelBundle
from edge.runtime.engine import EngineOptions
from edge.runtime.errors import NoModelLoaded

_OPTIONS = EngineOptions(intra_op_threads=1, warmup_runs=1)


def test_empty_slot_raises_no_model_loaded() -> None:
    slot = ModelSlot()
    assert not slot.loaded
    with pytest.raises(NoModelLoaded, match="no model is loaded"):
        slot.current()


def test_in_flight_reference_survives_a_swap(
    tiny_bundle_factory: Callable[..., ModelBundle],
) -> None:
    slot = ModelSlot()
    first = activate_bundle(slot, tiny_bundle_factory(version="1"), _OPTIONS)
    in_flight = slot.current()
    second = activate_bundle(slot, tiny_bundle_factory(version="2"), _OPTIONS)
    assert slot.current() is second
    assert in_flight is first
    blank = np.zeros((1, 64, 64, 3), dtype=np.uint8)
    assert in_flight.engine.run(blank).image_scores.shape == (1,)  # old engine still runs


def test_listeners_hear_current_and_every_swap(tiny_bundle: ModelBundle) -> None:
    slot = ModelSlot()
    heard: list[ActiveModel | None] = []
    slot.add_listener(heard.append)
    active = activate_bundle(slot, tiny_bundle, _OPTIONS)
    slot.swap(None)
    assert heard == [None, active, None]
    assert not slot.wait_loaded(0.01)
