"""Test doubles for the gateway unit tests: a small deterministic model satisfying
`ServingModel`, an exact numpy index satisfying `VectorIndex`, and a hashing text provider.
The integration tests use the real trained model, Milvus Lite and Redis instead."""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np

from newsrec.data.types import NewsArticle
from newsrec.errors import NotFound
from newsrec.index.base import HitColumns, NewsRecord, SearchFilters, SearchHit
from services.catalog import NewsCatalog, NewsInfo


def _unit(v: np.ndarray) -> np.ndarray:
    return (v / (np.linalg.norm(v, axis=-1, keepdims=True) + 1e-9)).astype(np.float32)


class FakeModel:
    def __init__(self, n: int = 300, dim: int = 16, version: str = "v-test", seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        self.model_version = version
        self.dim = dim
        self._ids = [f"N{i}" for i in range(n)]
        self._vecs = _unit(rng.standard_normal((n, dim)))
        self._row = {news_id: i for i, news_id in enumerate(self._ids)}
        self._mix = rng.standard_normal((dim, dim)).astype(np.float32)
        self.categories = [("sports", "news", "lifestyle")[i % 3] for i in range(n)]
        self.rank_delay = 0.0
        self.encode_delay = 0.0
        self.encode_calls = 0

    def news_ids(self) -> list[str]:
        return list(self._ids)

    def news_vectors(self) -> np.ndarray:
        return self._vecs

    def encode_user(self, history: Sequence[str]) -> tuple[np.ndarray, int]:
        self.encode_calls += 1
        if self.encode_delay:
            time.sleep(self.encode_delay)
        rows = [self._row[h] for h in history if h in self._row]
        unknown = len(history) - len(rows)
        if not rows:
            return np.zeros(self.dim, np.float32) + 1.0 / np.sqrt(self.dim), unknown
        return _unit(self._vecs[rows].mean(axis=0)), unknown

    def rank(
        self,
        user_vector: np.ndarray,
        history: Sequence[str],
        candidates: Sequence[str],
        now: datetime | float | None = None,
    ) -> np.ndarray:
        if self.rank_delay:
            time.sleep(self.rank_delay)
        zero = np.zeros(self.dim, np.float32)
        vecs = np.stack([self._vecs[self._row[c]] if c in self._row else zero for c in candidates])
        return (vecs @ self._mix @ user_vector).astype(np.float32)

    def encode_news(self, article: NewsArticle, text_vector: np.ndarray) -> np.ndarray:
        return _unit(np.resize(text_vector, self.dim))

    def add_news(
        self,
        article: NewsArticle,
        vector: np.ndarray,
        first_seen: datetime | None = None,
        text_vector: np.ndarray | None = None,
    ) -> None:
        self._row[article.news_id] = len(self._ids)
        self._ids.append(article.news_id)
        self._vecs = np.concatenate([self._vecs, np.asarray(vector, np.float32)[None, :]])
        self.categories.append(article.category)

    def news_metadata(self, news_id: str) -> dict[str, Any] | None:
        row = self._row.get(news_id)
        if row is None:
            return None
        cat = self.categories[row]
        return {"category": cat, "entities": [], "popularity": 0.0, "first_seen": None, "known": True}


class NumpyIndex:
    """Exact inner-product search; `close()` makes every call fail like a dead Milvus."""

    def __init__(self) -> None:
        self._rows: dict[str, dict[str, NewsRecord]] = {}
        self._aliases: dict[str, str] = {}
        self._lock = threading.Lock()
        self.closed = False

    def _check(self) -> None:
        if self.closed:
            raise ConnectionError("index closed")

    def build_version(self, alias: str, version: str, records: Sequence[NewsRecord]) -> str:
        name = f"{alias}_{version}"
        with self._lock:
            self._rows[name] = {r.news_id: r for r in records}
            self._aliases[alias] = name
        return name

    def upsert(self, alias: str, records: Sequence[NewsRecord]) -> None:
        self._check()
        with self._lock:
            for r in records:
                self._rows[self.resolve_alias(alias)][r.news_id] = r

    def search(
        self, alias: str, vectors: np.ndarray, k: int, filters: SearchFilters | None = None
    ) -> list[list[SearchHit]]:
        self._check()
        f = filters or SearchFilters()
        rows = [
            r
            for r in self._rows[self.resolve_alias(alias)].values()
            if r.news_id not in set(f.exclude_ids)
            and (not f.categories or r.category in f.categories)
            and (f.published_after is None or r.published_at > f.published_after)
        ]
        out = []
        for q in vectors:
            scored = sorted(rows, key=lambda r: -float(r.vector @ q))[:k]
            out.append(
                [
                    SearchHit(r.news_id, float(r.vector @ q), r.category, r.subcategory, r.published_at)
                    for r in scored
                ]
            )
        return out

    def search_columns(
        self, alias: str, vector: np.ndarray, k: int, filters: SearchFilters | None = None
    ) -> HitColumns:
        return HitColumns.from_hits(self.search(alias, np.asarray(vector)[None, :], k, filters)[0])

    def count(self, alias: str) -> int:
        self._check()
        return len(self._rows[self.resolve_alias(alias)])

    def resolve_alias(self, alias: str) -> str:
        if alias not in self._aliases:
            raise NotFound(f"alias {alias}")
        return self._aliases[alias]


@dataclass
class _Embedded:
    vectors: np.ndarray
    tokens: list[int]
    billed_tokens: int


class HashProvider:
    name = "hash"
    model = "hash-v1"
    max_tokens = 512
    max_concurrency = 1
    dimension = 32

    def embed(self, texts: list[str]) -> _Embedded:
        vecs = [
            np.frombuffer(hashlib.sha256(t.encode()).digest(), dtype=np.uint8).astype(np.float32) - 127.5
            for t in texts
        ]
        return _Embedded(_unit(np.stack(vecs)), [len(t.split()) for t in texts], 0)


def fake_variant(version: str = "v-test", seed: int = 0, weight: float = 1.0, alias: str = "news_fake"):  # type: ignore[no-untyped-def]
    """VariantDeps for a FakeModel indexed in a NumpyIndex, with an LRU cache."""
    from services.cache import LruVectorCache
    from services.stack import VariantDeps

    model = FakeModel(version=version, seed=seed)
    index = NumpyIndex()
    now = 1_700_000_000
    index.build_version(
        alias,
        version,
        [
            NewsRecord(i, model._vecs[n], model.categories[n], "sub", now + n, version)
            for n, i in enumerate(model.news_ids())
        ],
    )
    catalog = NewsCatalog(
        NewsInfo(i, f"Title of {i}", model.categories[n], "sub", now + n, clicks=(n * 37) % 101)
        for n, i in enumerate(model.news_ids())
    )
    return VariantDeps(model, index, alias, catalog, LruVectorCache(1000, 60), HashProvider(), weight)
