from linewatch.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Alert(_message.Message):
    __slots__ = ("id", "site", "line", "node", "frame_id", "captured_at_ms", "verdict", "image_score", "threshold", "model", "thumbnail_jpeg", "sample_id")
    ID_FIELD_NUMBER: _ClassVar[int]
    SITE_FIELD_NUMBER: _ClassVar[int]
    LINE_FIELD_NUMBER: _ClassVar[int]
    NODE_FIELD_NUMBER: _ClassVar[int]
    FRAME_ID_FIELD_NUMBER: _ClassVar[int]
    CAPTURED_AT_MS_FIELD_NUMBER: _ClassVar[int]
    VERDICT_FIELD_NUMBER: _ClassVar[int]
    IMAGE_SCORE_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    THUMBNAIL_JPEG_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    site: str
    line: str
    node: str
    frame_id: str
    captured_at_ms: int
    verdict: _common_pb2.Verdict
    image_score: float
    threshold: float
    model: _common_pb2.ModelRef
    thumbnail_jpeg: bytes
    sample_id: str
    def __init__(self, id: _Optional[str] = ..., site: _Optional[str] = ..., line: _Optional[str] = ..., node: _Optional[str] = ..., frame_id: _Optional[str] = ..., captured_at_ms: _Optional[int] = ..., verdict: _Optional[_Union[_common_pb2.Verdict, str]] = ..., image_score: _Optional[float] = ..., threshold: _Optional[float] = ..., model: _Optional[_Union[_common_pb2.ModelRef, _Mapping]] = ..., thumbnail_jpeg: _Optional[bytes] = ..., sample_id: _Optional[str] = ...) -> None: ...

class Sample(_message.Message):
    __slots__ = ("id", "site", "line", "node", "frame_id", "captured_at_ms", "verdict", "image_score", "threshold", "uncertain_low", "model", "image_png", "anomaly_map_png", "metadata")
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    SITE_FIELD_NUMBER: _ClassVar[int]
    LINE_FIELD_NUMBER: _ClassVar[int]
    NODE_FIELD_NUMBER: _ClassVar[int]
    FRAME_ID_FIELD_NUMBER: _ClassVar[int]
    CAPTURED_AT_MS_FIELD_NUMBER: _ClassVar[int]
    VERDICT_FIELD_NUMBER: _ClassVar[int]
    IMAGE_SCORE_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    UNCERTAIN_LOW_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    IMAGE_PNG_FIELD_NUMBER: _ClassVar[int]
    ANOMALY_MAP_PNG_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    id: str
    site: str
    line: str
    node: str
    frame_id: str
    captured_at_ms: int
    verdict: _common_pb2.Verdict
    image_score: float
    threshold: float
    uncertain_low: float
    model: _common_pb2.ModelRef
    image_png: bytes
    anomaly_map_png: bytes
    metadata: _containers.ScalarMap[str, str]
    def __init__(self, id: _Optional[str] = ..., site: _Optional[str] = ..., line: _Optional[str] = ..., node: _Optional[str] = ..., frame_id: _Optional[str] = ..., captured_at_ms: _Optional[int] = ..., verdict: _Optional[_Union[_common_pb2.Verdict, str]] = ..., image_score: _Optional[float] = ..., threshold: _Optional[float] = ..., uncertain_low: _Optional[float] = ..., model: _Optional[_Union[_common_pb2.ModelRef, _Mapping]] = ..., image_png: _Optional[bytes] = ..., anomaly_map_png: _Optional[bytes] = ..., metadata: _Optional[_Mapping[str, str]] = ...) -> None: ...

class NodeStatus(_message.Message):
    __slots__ = ("id", "site", "line", "node", "state", "sent_at_ms", "model", "grpc_address", "frames_processed", "frames_dropped", "outbox_backlog")
    class State(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        STATE_UNSPECIFIED: _ClassVar[NodeStatus.State]
        STATE_ONLINE: _ClassVar[NodeStatus.State]
        STATE_OFFLINE: _ClassVar[NodeStatus.State]
    STATE_UNSPECIFIED: NodeStatus.State
    STATE_ONLINE: NodeStatus.State
    STATE_OFFLINE: NodeStatus.State
    ID_FIELD_NUMBER: _ClassVar[int]
    SITE_FIELD_NUMBER: _ClassVar[int]
    LINE_FIELD_NUMBER: _ClassVar[int]
    NODE_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    SENT_AT_MS_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    GRPC_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    FRAMES_PROCESSED_FIELD_NUMBER: _ClassVar[int]
    FRAMES_DROPPED_FIELD_NUMBER: _ClassVar[int]
    OUTBOX_BACKLOG_FIELD_NUMBER: _ClassVar[int]
    id: str
    site: str
    line: str
    node: str
    state: NodeStatus.State
    sent_at_ms: int
    model: _common_pb2.ModelRef
    grpc_address: str
    frames_processed: int
    frames_dropped: int
    outbox_backlog: int
    def __init__(self, id: _Optional[str] = ..., site: _Optional[str] = ..., line: _Optional[str] = ..., node: _Optional[str] = ..., state: _Optional[_Union[NodeStatus.State, str]] = ..., sent_at_ms: _Optional[int] = ..., model: _Optional[_Union[_common_pb2.ModelRef, _Mapping]] = ..., grpc_address: _Optional[str] = ..., frames_processed: _Optional[int] = ..., frames_dropped: _Optional[int] = ..., outbox_backlog: _Optional[int] = ...) -> None: ...
