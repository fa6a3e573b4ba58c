from linewatch.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class InspectRequest(_message.Message):
    __slots__ = ("encoded", "raw", "frame_id", "want_anomaly_map", "want_overlay")
    ENCODED_FIELD_NUMBER: _ClassVar[int]
    RAW_FIELD_NUMBER: _ClassVar[int]
    FRAME_ID_FIELD_NUMBER: _ClassVar[int]
    WANT_ANOMALY_MAP_FIELD_NUMBER: _ClassVar[int]
    WANT_OVERLAY_FIELD_NUMBER: _ClassVar[int]
    encoded: bytes
    raw: _common_pb2.RawImage
    frame_id: str
    want_anomaly_map: bool
    want_overlay: bool
    def __init__(self, encoded: _Optional[bytes] = ..., raw: _Optional[_Union[_common_pb2.RawImage, _Mapping]] = ..., frame_id: _Optional[str] = ..., want_anomaly_map: _Optional[bool] = ..., want_overlay: _Optional[bool] = ...) -> None: ...

class InspectResponse(_message.Message):
    __slots__ = ("frame_id", "verdict", "image_score", "threshold", "uncertain_low", "model", "latency_ms", "inference_ms", "anomaly_map_png", "overlay_jpeg")
    FRAME_ID_FIELD_NUMBER: _ClassVar[int]
    VERDICT_FIELD_NUMBER: _ClassVar[int]
    IMAGE_SCORE_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    UNCERTAIN_LOW_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    LATENCY_MS_FIELD_NUMBER: _ClassVar[int]
    INFERENCE_MS_FIELD_NUMBER: _ClassVar[int]
    ANOMALY_MAP_PNG_FIELD_NUMBER: _ClassVar[int]
    OVERLAY_JPEG_FIELD_NUMBER: _ClassVar[int]
    frame_id: str
    verdict: _common_pb2.Verdict
    image_score: float
    threshold: float
    uncertain_low: float
    model: _common_pb2.ModelRef
    latency_ms: float
    inference_ms: float
    anomaly_map_png: bytes
    overlay_jpeg: bytes
    def __init__(self, frame_id: _Optional[str] = ..., verdict: _Optional[_Union[_common_pb2.Verdict, str]] = ..., image_score: _Optional[float] = ..., threshold: _Optional[float] = ..., uncertain_low: _Optional[float] = ..., model: _Optional[_Union[_common_pb2.ModelRef, _Mapping]] = ..., latency_ms: _Optional[float] = ..., inference_ms: _Optional[float] = ..., anomaly_map_png: _Optional[bytes] = ..., overlay_jpeg: _Optional[bytes] = ...) -> None: ...

class GetModelInfoRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ModelInfo(_message.Message):
    __slots__ = ("model", "input_height", "input_width", "threshold", "uncertain_low", "providers", "created_at", "decision_method")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    INPUT_HEIGHT_FIELD_NUMBER: _ClassVar[int]
    INPUT_WIDTH_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    UNCERTAIN_LOW_FIELD_NUMBER: _ClassVar[int]
    PROVIDERS_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    DECISION_METHOD_FIELD_NUMBER: _ClassVar[int]
    model: _common_pb2.ModelRef
    input_height: int
    input_width: int
    threshold: float
    uncertain_low: float
    providers: _containers.RepeatedScalarFieldContainer[str]
    created_at: str
    decision_method: str
    def __init__(self, model: _Optional[_Union[_common_pb2.ModelRef, _Mapping]] = ..., input_height: _Optional[int] = ..., input_width: _Optional[int] = ..., threshold: _Optional[float] = ..., uncertain_low: _Optional[float] = ..., providers: _Optional[_Iterable[str]] = ..., created_at: _Optional[str] = ..., decision_method: _Optional[str] = ...) -> None: ...
