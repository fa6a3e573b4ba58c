from linewatch.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class PushChunk(_message.Message):
    __slots__ = ("upload_id", "offset", "data", "total_size", "sha256")
    UPLOAD_ID_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    TOTAL_SIZE_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    upload_id: str
    offset: int
    data: bytes
    total_size: int
    sha256: str
    def __init__(self, upload_id: _Optional[str] = ..., offset: _Optional[int] = ..., data: _Optional[bytes] = ..., total_size: _Optional[int] = ..., sha256: _Optional[str] = ...) -> None: ...

class PushResponse(_message.Message):
    __slots__ = ("upload_id", "received_bytes", "complete", "model")
    UPLOAD_ID_FIELD_NUMBER: _ClassVar[int]
    RECEIVED_BYTES_FIELD_NUMBER: _ClassVar[int]
    COMPLETE_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    upload_id: str
    received_bytes: int
    complete: bool
    model: _common_pb2.ModelRef
    def __init__(self, upload_id: _Optional[str] = ..., received_bytes: _Optional[int] = ..., complete: _Optional[bool] = ..., model: _Optional[_Union[_common_pb2.ModelRef, _Mapping]] = ...) -> None: ...

class UploadStatusRequest(_message.Message):
    __slots__ = ("upload_id",)
    UPLOAD_ID_FIELD_NUMBER: _ClassVar[int]
    upload_id: str
    def __init__(self, upload_id: _Optional[str] = ...) -> None: ...

class UploadStatusResponse(_message.Message):
    __slots__ = ("upload_id", "received_bytes")
    UPLOAD_ID_FIELD_NUMBER: _ClassVar[int]
    RECEIVED_BYTES_FIELD_NUMBER: _ClassVar[int]
    upload_id: str
    received_bytes: int
    def __init__(self, upload_id: _Optional[str] = ..., received_bytes: _Optional[int] = ...) -> None: ...

class ActivateRequest(_message.Message):
    __slots__ = ("model",)
    MODEL_FIELD_NUMBER: _ClassVar[int]
    model: _common_pb2.ModelRef
    def __init__(self, model: _Optional[_Union[_common_pb2.ModelRef, _Mapping]] = ...) -> None: ...

class ActivateResponse(_message.Message):
    __slots__ = ("active", "previous", "detail")
    ACTIVE_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    active: _common_pb2.ModelRef
    previous: _common_pb2.ModelRef
    detail: str
    def __init__(self, active: _Optional[_Union[_common_pb2.ModelRef, _Mapping]] = ..., previous: _Optional[_Union[_common_pb2.ModelRef, _Mapping]] = ..., detail: _Optional[str] = ...) -> None: ...

class RollbackRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class BundleEntry(_message.Message):
    __slots__ = ("model", "active", "staged_at")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_FIELD_NUMBER: _ClassVar[int]
    STAGED_AT_FIELD_NUMBER: _ClassVar[int]
    model: _common_pb2.ModelRef
    active: bool
    staged_at: str
    def __init__(self, model: _Optional[_Union[_common_pb2.ModelRef, _Mapping]] = ..., active: _Optional[bool] = ..., staged_at: _Optional[str] = ...) -> None: ...

class ListResponse(_message.Message):
    __slots__ = ("bundles", "active")
    BUNDLES_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_FIELD_NUMBER: _ClassVar[int]
    bundles: _containers.RepeatedCompositeFieldContainer[BundleEntry]
    active: _common_pb2.ModelRef
    def __init__(self, bundles: _Optional[_Iterable[_Union[BundleEntry, _Mapping]]] = ..., active: _Optional[_Union[_common_pb2.ModelRef, _Mapping]] = ...) -> None: ...
