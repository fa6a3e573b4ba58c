from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Optional as _Optional

DESCRIPTOR: _descriptor.FileDescriptor

class Verdict(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    VERDICT_UNSPECIFIED: _ClassVar[Verdict]
    VERDICT_NORMAL: _ClassVar[Verdict]
    VERDICT_UNCERTAIN: _ClassVar[Verdict]
    VERDICT_ABNORMAL: _ClassVar[Verdict]
VERDICT_UNSPECIFIED: Verdict
VERDICT_NORMAL: Verdict
VERDICT_UNCERTAIN: Verdict
VERDICT_ABNORMAL: Verdict

class ModelRef(_message.Message):
    __slots__ = ("name", "version", "model_sha256")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    MODEL_SHA256_FIELD_NUMBER: _ClassVar[int]
    name: str
    version: str
    model_sha256: str
    def __init__(self, name: _Optional[str] = ..., version: _Optional[str] = ..., model_sha256: _Optional[str] = ...) -> None: ...

class RawImage(_message.Message):
    __slots__ = ("height", "width", "channels", "pixels")
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    CHANNELS_FIELD_NUMBER: _ClassVar[int]
    PIXELS_FIELD_NUMBER: _ClassVar[int]
    height: int
    width: int
    channels: int
    pixels: bytes
    def __init__(self, height: _Optional[int] = ..., width: _Optional[int] = ..., channels: _Optional[int] = ..., pixels: _Optional[bytes] = ...) -> None: ...
