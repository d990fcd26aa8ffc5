"""The vector index interface the pipeline builds and the retrieval service searches.

One collection per model version; an alias (e.g. `news_<model>`) points at the
version being served and is flipped only after a new version is built and checked.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple, Protocol

import numpy as np


@dataclass(frozen=True, slots=True)
class NewsRecord:
    """One row of a news collection."""

    news_id: str
    vector: np.ndarray  # float32, shape (dim,)
    category: str
    subcategory: str
    published_at: int  # unix seconds
    model_version: str


@dataclass(frozen=True, slots=True)
class SearchFilters:
    """Restrictions applied inside the search, not after it."""

    exclude_ids: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    published_after: int | None = None  # unix seconds


class SearchHit(NamedTuple):
    """One search result. A NamedTuple: a search builds hundreds per request, and a
    frozen dataclass costs about 3x as much to construct."""

    news_id: str
    score: float
    category: str
    subcategory: str
    published_at: int
    model_version: str = ""  # the version that produced this hit (all hits of one search share it)


@dataclass(frozen=True, slots=True)
class HitColumns:
    """The hits of one query as parallel columns, best first: what the retrieval service
    answers. An in-memory index fills each column with one C-level gather instead of
    building a few hundred `SearchHit`s per request."""

    news_ids: list[str]
    scores: list[float]
    categories: list[str]
    subcategories: list[str]
    published_at: list[int]

    @classmethod
    def from_hits(cls, hits: Sequence[SearchHit]) -> HitColumns:
        return cls(
            news_ids=[h.news_id for h in hits],
            scores=[float(h.score) for h in hits],  # an index may return numpy scalars
            categories=[h.category for h in hits],
            subcategories=[h.subcategory for h in hits],
            published_at=[int(h.published_at) for h in hits],
        )

    def __len__(self) -> int:
        return len(self.news_ids)


class VectorIndex(Protocol):
    """What the pipeline and the retrieval service need from a vector store."""

    def build_version(self, alias: str, version: str, records: Sequence[NewsRecord]) -> str:
        """Create the collection for `version`, load and check it, then flip `alias` to it.

        Returns the collection name. Idempotent for the same alias, version and records.
        """
        ...

    def upsert(self, alias: str, records: Sequence[NewsRecord]) -> None:
        """Insert or replace single articles in the collection behind `alias`."""
        ...

    def search(
        self, alias: str, vectors: np.ndarray, k: int, filters: SearchFilters | None = None
    ) -> list[list[SearchHit]]:
        """Top-k by inner product for each row of `vectors` (shape (n, dim))."""
        ...

    def search_columns(
        self, alias: str, vector: np.ndarray, k: int, filters: SearchFilters | None = None
    ) -> HitColumns:
        """Top-k by inner product for one query `vector` (shape (dim,)), as columns."""
        ...

    def count(self, alias: str) -> int:
        """Number of rows behind `alias`."""
        ...

    def resolve_alias(self, alias: str) -> str:
        """Collection name the alias currently points at."""
        ...
