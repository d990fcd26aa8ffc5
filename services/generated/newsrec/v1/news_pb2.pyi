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

class GetNewsRequest(_message.Message):
    __slots__ = ("news_ids", "model_version")
    NEWS_IDS_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    news_ids: _containers.RepeatedScalarFieldContainer[str]
    model_version: str
    def __init__(self, news_ids: _Optional[_Iterable[str]] = ..., model_version: _Optional[str] = ...) -> None: ...

class StoredNews(_message.Message):
    __slots__ = ("news_id", "title", "abstract", "category", "subcategory", "entities", "published_at", "vector", "text_vector")
    NEWS_ID_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    ABSTRACT_FIELD_NUMBER: _ClassVar[int]
    CATEGORY_FIELD_NUMBER: _ClassVar[int]
    SUBCATEGORY_FIELD_NUMBER: _ClassVar[int]
    ENTITIES_FIELD_NUMBER: _ClassVar[int]
    PUBLISHED_AT_FIELD_NUMBER: _ClassVar[int]
    VECTOR_FIELD_NUMBER: _ClassVar[int]
    TEXT_VECTOR_FIELD_NUMBER: _ClassVar[int]
    news_id: str
    title: str
    abstract: str
    category: str
    subcategory: str
    entities: _containers.RepeatedCompositeFieldContainer[NewsEntity]
    published_at: int
    vector: _containers.RepeatedScalarFieldContainer[float]
    text_vector: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, news_id: _Optional[str] = ..., title: _Optional[str] = ..., abstract: _Optional[str] = ..., category: _Optional[str] = ..., subcategory: _Optional[str] = ..., entities: _Optional[_Iterable[_Union[NewsEntity, _Mapping]]] = ..., published_at: _Optional[int] = ..., vector: _Optional[_Iterable[float]] = ..., text_vector: _Optional[_Iterable[float]] = ...) -> None: ...

class GetNewsResponse(_message.Message):
    __slots__ = ("articles", "model_version")
    ARTICLES_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    articles: _containers.RepeatedCompositeFieldContainer[StoredNews]
    model_version: str
    def __init__(self, articles: _Optional[_Iterable[_Union[StoredNews, _Mapping]]] = ..., model_version: _Optional[str] = ...) -> None: ...
