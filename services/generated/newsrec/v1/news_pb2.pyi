from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class NewsEntity(_message.Message):
    __slots__ = ("wikidata_id", "label", "type", "confidence")
    WIKIDATA_ID_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    wikidata_id: str
    label: str
    type: str
    confidence: float
    def __init__(self, wikidata_id: _Optional[str] = ..., label: _Optional[str] = ..., type: _Optional[str] = ..., confidence: _Optional[float] = ...) -> None: ...

class UpsertNewsRequest(_message.Message):
    __slots__ = ("news_id", "title", "abstract", "category", "subcategory", "entities", "published_at")
    NEWS_ID_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    ABSTRACT_FIELD_NUMBER: _ClassVar[int]
    CATEGORY_FIELD_NUMBER: _ClassVar[int]
    SUBCATEGORY_FIELD_NUMBER: _ClassVar[int]
    ENTITIES_FIELD_NUMBER: _ClassVar[int]
    PUBLISHED_AT_FIELD_NUMBER: _ClassVar[int]
    news_id: str
    title: str
    abstract: str
    category: str
    subcategory: str
    entities: _containers.RepeatedCompositeFieldContainer[NewsEntity]
    published_at: int
    def __init__(self, news_id: _Optional[str] = ..., title: _Optional[str] = ..., abstract: _Optional[str] = ..., category: _Optional[str] = ..., subcategory: _Optional[str] = ..., entities: _Optional[_Iterable[_Union[NewsEntity, _Mapping]]] = ..., published_at: _Optional[int] = ...) -> None: ...

class UpsertNewsResponse(_message.Message):
    __slots__ = ("news_id", "model_version", "collection", "dim")
    NEWS_ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    DIM_FIELD_NUMBER: _ClassVar[int]
    news_id: str
    model_version: str
    collection: str
    dim: int
    def __init__(self, news_id: _Optional[str] = ..., model_version: _Optional[str] = ..., collection: _Optional[str] = ..., dim: _Optional[int] = ...) -> None: ...
