from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable
from typing import ClassVar as _ClassVar, Optional as _Optional

DESCRIPTOR: _descriptor.FileDescriptor

class EncodeUserRequest(_message.Message):
    __slots__ = ("user_id", "history_ids", "recent_clicks", "model_version")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    HISTORY_IDS_FIELD_NUMBER: _ClassVar[int]
    RECENT_CLICKS_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    history_ids: _containers.RepeatedScalarFieldContainer[str]
    recent_clicks: _containers.RepeatedScalarFieldContainer[str]
    model_version: str
    def __init__(self, user_id: _Optional[str] = ..., history_ids: _Optional[_Iterable[str]] = ..., recent_clicks: _Optional[_Iterable[str]] = ..., model_version: _Optional[str] = ...) -> None: ...

class EncodeUserResponse(_message.Message):
    __slots__ = ("vector", "model_version", "cache_hit", "unknown_history_count", "degraded", "degraded_reasons")
    VECTOR_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    CACHE_HIT_FIELD_NUMBER: _ClassVar[int]
    UNKNOWN_HISTORY_COUNT_FIELD_NUMBER: _ClassVar[int]
    DEGRADED_FIELD_NUMBER: _ClassVar[int]
    DEGRADED_REASONS_FIELD_NUMBER: _ClassVar[int]
    vector: _containers.RepeatedScalarFieldContainer[float]
    model_version: str
    cache_hit: bool
    unknown_history_count: int
    degraded: bool
    degraded_reasons: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, vector: _Optional[_Iterable[float]] = ..., model_version: _Optional[str] = ..., cache_hit: _Optional[bool] = ..., unknown_history_count: _Optional[int] = ..., degraded: _Optional[bool] = ..., degraded_reasons: _Optional[_Iterable[str]] = ...) -> None: ...
