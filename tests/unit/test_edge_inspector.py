"""Inspector: decode, resize, infer, decide, with clear errors for bad input."""

from __future__ import annotations

import pytest

from edge.inspector import Inspector
from edge.model_slot import ModelSlot, activate_bundle
from edge.runtime.bundle import ModelBundle
from edge.runtime.engine import EngineOptions
from edge.runtime.errors import ImageDecodeError, ImageTooLarge, NoModelLoaded
from edge.runtime.policy import Verdict
from tests.plugins.edge import (
    ABNORMAL_GREY,
    NORMAL_GREY,
    UNCERTAIN_GREY,
    encode_png,
    grey_image,
)


@pytest.fixture
def inspector(tiny_bundle: ModelBundle) -> Inspector:
    slot = ModelSlot()
    activate_bundle(slot, tiny_bundle, EngineOptions(intra_op_threads=1, warmup_runs=1))
    return Inspector(slot, max_pixels=100_000)


@pytest.mark.parametrize(
    ("level", "verdict"),
    [
        (NORMAL_GREY, Verdict.NORMAL),
        (UNCERTAIN_GREY, Verdict.UNCERTAIN),
        (ABNORMAL_GREY, Verdict.ABNORMAL),
        (0, Verdict.ABNORMAL),
    ],
)
def test_verdict_follows_the_bundle_policy(
    inspector: Inspector, level: int, verdict: Verdict
) -> None:
    inspection = inspector.inspect_encoded(encode_png(grey_image(level, size=100)))
    frame = inspection.frame
    assert frame.verdict is verdict
    assert frame.threshold == 2.0 and frame.uncertain_low == 1.5
    assert frame.image.shape == (100, 100, 3)  # the frame as captured, not resized
    assert frame.anomaly_map.shape == (64, 64)
    assert frame.model.name == "tiny" and frame.model.version == "1"
    assert frame.latency_ms >= inspection.inference_ms > 0


def test_frame_id_is_echoed_or_made(inspector: Inspector) -> None:
    image = encode_png(grey_image(NORMAL_GREY))
    assert inspector.inspect_encoded(image, frame_id="cam7-42").frame.frame_id == "cam7-42"
    assert len(inspector.inspect_encoded(image).frame.frame_id) == 32


def test_raw_grey_pixels_are_inspected(inspector: Inspector) -> None:
    pixels = bytes([ABNORMAL_GREY]) * (32 * 48)
    frame = inspector.inspect_raw(32, 48, 1, pixels).frame
    assert frame.verdict is Verdict.ABNORMAL
    assert frame.image.shape == (32, 48, 3)


@pytest.mark.parametrize(
    ("height", "width", "channels", "length", "message"),
    [
        (10, 10, 3, 299, "299 pixel bytes, but 10x10x3 needs 300"),
        (10, 10, 2, 200, "channels 2"),
        (0, 10, 3, 0, "must both be positive"),
    ],
)
def test_raw_shape_mismatch_names_the_problem(
    inspector: Inspector, height: int, width: int, channels: int, length: int, message: str
) -> None:
    with pytest.raises(ImageDecodeError, match=message):
        inspector.inspect_raw(height, width, channels, b"\0" * length)


def test_raw_over_the_pixel_limit_is_too_large(inspector: Inspector) -> None:
    with pytest.raises(ImageTooLarge, match="over the limit of 100000 pixels"):
        inspector.inspect_raw(1000, 1000, 1, b"")


def test_encoded_over_the_pixel_limit_is_too_large(inspector: Inspector) -> None:
    with pytest.raises(ImageTooLarge):
        inspector.inspect_encoded(encode_png(grey_image(NORMAL_GREY, size=400)))


def test_not_an_image(inspector: Inspector) -> None:
    with pytest.raises(ImageDecodeError, match="12 bytes are not an image"):
        inspector.inspect_encoded(b"hello, world")


def test_no_model_is_checked_first() -> None:
    with pytest.raises(NoModelLoaded):
        Inspector(ModelSlot()).inspect_encoded(b"not even an image")
