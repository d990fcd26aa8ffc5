from services.generated.newsrec.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class RetrieveRequest(_message.Message):
    __slots__ = ("vector", "k", "filters")
    VECTOR_FIELD_NUMBER: _ClassVar[int]
    K_FIELD_NUMBER: _ClassVar[int]
    FILTERS_FIELD_NUMBER: _ClassVar[int]
    vector: _containers.RepeatedScalarFieldContainer[float]
    k: int
    filters: _common_pb2.RetrievalFilters
    def __init__(self, vector: _Optional[_Iterable[float]] = ..., k: _Optional[int] = ..., filters: _Optional[_Union[_common_pb2.RetrievalFilters, _Mapping]] = ...) -> None: ...

class RetrieveResponse(_message.Message):
    __slots__ = ("model_version", "news_ids", "scores", "titles", "categories", "subcategories", "published_at", "degraded_reasons")
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    NEWS_IDS_FIELD_NUMBER: _ClassVar[int]
    SCORES_FIELD_NUMBER: _ClassVar[int]
    TITLES_FIELD_NUMBER: _ClassVar[int]
    CATEGORIES_FIELD_NUMBER: _ClassVar[int]
    SUBCATEGORIES_FIELD_NUMBER: _ClassVar[int]
    PUBLISHED_AT_FIELD_NUMBER: _ClassVar[int]
    DEGRADED_REASONS_FIELD_NUMBER: _ClassVar[int]
    model_version: str
    news_ids: _containers.RepeatedScalarFieldContainer[str]
    scores: _containers.RepeatedScalarFieldContainer[float]
    titles: _containers.RepeatedScalarFieldContainer[str]
    categories: _containers.RepeatedScalarFieldContainer[str]
    subcategories: _containers.RepeatedScalarFieldContainer[str]
    published_at: _containers.RepeatedScalarFieldContainer[int]
    degraded_reasons: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, model_version: _Optional[str] = ..., news_ids: _Optional[_Iterable[str]] = ..., scores: _Optional[_Iterable[float]] = ..., titles: _Optional[_Iterable[str]] = ..., categories: _Optional[_Iterable[str]] = ..., subcategories: _Optional[_Iterable[str]] = ..., published_at: _Optional[_Iterable[int]] = ..., degraded_reasons: _Optional[_Iterable[str]] = ...) -> None: ...
