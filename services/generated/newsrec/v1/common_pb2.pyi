from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable
from typing import ClassVar as _ClassVar, Optional as _Optional

DESCRIPTOR: _descriptor.FileDescriptor

class RetrievalFilters(_message.Message):
    __slots__ = ("exclude_ids", "categories", "published_after")
    EXCLUDE_IDS_FIELD_NUMBER: _ClassVar[int]
    CATEGORIES_FIELD_NUMBER: _ClassVar[int]
    PUBLISHED_AFTER_FIELD_NUMBER: _ClassVar[int]
    exclude_ids: _containers.RepeatedScalarFieldContainer[str]
    categories: _containers.RepeatedScalarFieldContainer[str]
    published_after: int
    def __init__(self, exclude_ids: _Optional[_Iterable[str]] = ..., categories: _Optional[_Iterable[str]] = ..., published_after: _Optional[int] = ...) -> None: ...
