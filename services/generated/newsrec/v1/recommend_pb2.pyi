import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class RecommendRequest(_message.Message):
    __slots__ = ("user_id", "history_ids", "k", "forced_variant")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    HISTORY_IDS_FIELD_NUMBER: _ClassVar[int]
    K_FIELD_NUMBER: _ClassVar[int]
    FORCED_VARIANT_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    history_ids: _containers.RepeatedScalarFieldContainer[str]
    k: int
    forced_variant: str
    def __init__(self, user_id: _Optional[str] = ..., history_ids: _Optional[_Iterable[str]] = ..., k: _Optional[int] = ..., forced_variant: _Optional[str] = ...) -> None: ...

class RecommendedItem(_message.Message):
    __slots__ = ("news_id", "title", "category", "score")
    NEWS_ID_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    CATEGORY_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    news_id: str
    title: str
    category: str
    score: float
    def __init__(self, news_id: _Optional[str] = ..., title: _Optional[str] = ..., category: _Optional[str] = ..., score: _Optional[float] = ...) -> None: ...

class StageLatency(_message.Message):
    __slots__ = ("stage", "seconds")
    STAGE_FIELD_NUMBER: _ClassVar[int]
    SECONDS_FIELD_NUMBER: _ClassVar[int]
    stage: str
    seconds: float
    def __init__(self, stage: _Optional[str] = ..., seconds: _Optional[float] = ...) -> None: ...

class RecommendResponse(_message.Message):
    __slots__ = ("items", "variant", "model_version", "degraded", "degraded_reasons", "stage_latencies", "unknown_history_count", "cache_hit", "request_id")
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    VARIANT_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    DEGRADED_FIELD_NUMBER: _ClassVar[int]
    DEGRADED_REASONS_FIELD_NUMBER: _ClassVar[int]
    STAGE_LATENCIES_FIELD_NUMBER: _ClassVar[int]
    UNKNOWN_HISTORY_COUNT_FIELD_NUMBER: _ClassVar[int]
    CACHE_HIT_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    items: _containers.RepeatedCompositeFieldContainer[RecommendedItem]
    variant: str
    model_version: str
    degraded: bool
    degraded_reasons: _containers.RepeatedScalarFieldContainer[str]
    stage_latencies: _containers.RepeatedCompositeFieldContainer[StageLatency]
    unknown_history_count: int
    cache_hit: bool
    request_id: str
    def __init__(self, items: _Optional[_Iterable[_Union[RecommendedItem, _Mapping]]] = ..., variant: _Optional[str] = ..., model_version: _Optional[str] = ..., degraded: _Optional[bool] = ..., degraded_reasons: _Optional[_Iterable[str]] = ..., stage_latencies: _Optional[_Iterable[_Union[StageLatency, _Mapping]]] = ..., unknown_history_count: _Optional[int] = ..., cache_hit: _Optional[bool] = ..., request_id: _Optional[str] = ...) -> None: ...

class LogFeedbackRequest(_message.Message):
    __slots__ = ("event_id", "request_id", "user_id", "shown_ids", "clicked_ids", "event_time")
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    SHOWN_IDS_FIELD_NUMBER: _ClassVar[int]
    CLICKED_IDS_FIELD_NUMBER: _ClassVar[int]
    EVENT_TIME_FIELD_NUMBER: _ClassVar[int]
    event_id: str
    request_id: str
    user_id: str
    shown_ids: _containers.RepeatedScalarFieldContainer[str]
    clicked_ids: _containers.RepeatedScalarFieldContainer[str]
    event_time: _timestamp_pb2.Timestamp
    def __init__(self, event_id: _Optional[str] = ..., request_id: _Optional[str] = ..., user_id: _Optional[str] = ..., shown_ids: _Optional[_Iterable[str]] = ..., clicked_ids: _Optional[_Iterable[str]] = ..., event_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class LogFeedbackResponse(_message.Message):
    __slots__ = ("event_id", "duplicate", "stream_id", "variant", "model_version")
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    DUPLICATE_FIELD_NUMBER: _ClassVar[int]
    STREAM_ID_FIELD_NUMBER: _ClassVar[int]
    VARIANT_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    event_id: str
    duplicate: bool
    stream_id: str
    variant: str
    model_version: str
    def __init__(self, event_id: _Optional[str] = ..., duplicate: _Optional[bool] = ..., stream_id: _Optional[str] = ..., variant: _Optional[str] = ..., model_version: _Optional[str] = ...) -> None: ...
