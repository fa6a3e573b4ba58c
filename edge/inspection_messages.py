"""InspectionService messages to domain calls and back, so the servicer stays thin.

A request becomes a queued frame (``submit_request``: decoded now, inferred with
the next batch), and an ``Inspection`` becomes a response (``to_response``),
with the anomaly map and overlay encoded only when the client asked for them.
"""

from __future__ import annotations

from linewatch.v1 import common_pb2, inspection_pb2

from edge.frames import ModelIdentity
from edge.inspector import Inspection, Inspector, PendingInspection
from edge.runtime.errors import ImageDecodeError
from edge.runtime.verdict_codes import verdict_to_proto
from edge.visualize import anomaly_map_png, overlay_jpeg

__all__ = ["model_ref", "submit_request", "to_response"]


def submit_request(
    inspector: Inspector, request: inspection_pb2.InspectRequest
) -> PendingInspection:
    """Decode the request's image and queue it for inference.

    Raises:
        NoModelLoaded: no active model.
        ImageDecodeError: no image, or bytes or pixels that are not one.
        ImageTooLarge: an image over the node's pixel limit.
    """
    kind = request.WhichOneof("image")
    if kind == "encoded":
        return inspector.submit_encoded(request.encoded, frame_id=request.frame_id)
    if kind == "raw":
        raw = request.raw
        return inspector.submit_raw(
            raw.height, raw.width, raw.channels, raw.pixels, frame_id=request.frame_id
        )
    msg = "request: no image; set either `encoded` (PNG/JPEG bytes) or `raw` (pixels)"
    raise ImageDecodeError(msg)


def to_response(
    request: inspection_pb2.InspectRequest, inspection: Inspection
) -> inspection_pb2.InspectResponse:
    """The response for one inspected frame; latencies are the frame's own."""
    frame = inspection.frame
    response = inspection_pb2.InspectResponse(
        frame_id=frame.frame_id,
        verdict=verdict_to_proto(frame.verdict),
        image_score=frame.image_score,
        threshold=frame.threshold,
        uncertain_low=frame.uncertain_low,
        model=model_ref(frame.model),
        latency_ms=frame.latency_ms,
        inference_ms=inspection.inference_ms,
    )
    if request.want_anomaly_map:
        response.anomaly_map_png = anomaly_map_png(frame.anomaly_map, frame.threshold)
    if request.want_overlay:
        response.overlay_jpeg = overlay_jpeg(frame.image, frame.anomaly_map, frame.threshold)
    return response


def model_ref(identity: ModelIdentity) -> common_pb2.ModelRef:
    """The wire form of a model's identity."""
    return common_pb2.ModelRef(
        name=identity.name, version=identity.version, model_sha256=identity.model_sha256
    )
