from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class RankRequest(_message.Message):
    __slots__ = ("user_id", "user_vector", "history_ids", "candidate_ids", "top_k")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    USER_VECTOR_FIELD_NUMBER: _ClassVar[int]
    HISTORY_IDS_FIELD_NUMBER: _ClassVar[int]
    CANDIDATE_IDS_FIELD_NUMBER: _ClassVar[int]
    TOP_K_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    user_vector: _containers.RepeatedScalarFieldContainer[float]
    history_ids: _containers.RepeatedScalarFieldContainer[str]
    candidate_ids: _containers.RepeatedScalarFieldContainer[str]
    top_k: int
    def __init__(self, user_id: _Optional[str] = ..., user_vector: _Optional[_Iterable[float]] = ..., history_ids: _Optional[_Iterable[str]] = ..., candidate_ids: _Optional[_Iterable[str]] = ..., top_k: _Optional[int] = ...) -> None: ...

class ScoredCandidate(_message.Message):
    __slots__ = ("news_id", "score")
    NEWS_ID_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    news_id: str
    score: float
    def __init__(self, news_id: _Optional[str] = ..., score: _Optional[float] = ...) -> None: ...

class RankResponse(_message.Message):
    __slots__ = ("candidates", "model_version")
    CANDIDATES_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    candidates: _containers.RepeatedCompositeFieldContainer[ScoredCandidate]
    model_version: str
    def __init__(self, candidates: _Optional[_Iterable[_Union[ScoredCandidate, _Mapping]]] = ..., model_version: _Optional[str] = ...) -> None: ...
