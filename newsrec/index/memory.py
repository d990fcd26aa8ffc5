"""Exact in-memory search, and a mirror of a Milvus collection that serves from memory.

Why: on Milvus Lite 2.5.1 a FLAT search of 100k vectors costs several times an exact
numpy scan (figures in docs/benchmarks/retrieval.md), over the serving budget of p99 ≤
2x the exact scan. `MirroredIndex` keeps the Milvus collection as the source of truth
(versioned, behind the alias) and answers searches from an exact numpy copy of the
collection the alias points at. A background thread re-checks the alias every
`refresh_s` and reloads the copy when it moved (searches keep using the old copy until
then); upserts go to Milvus first, then to the copy. Filters set the scores of excluded
rows to -inf before the top-k, so k results come back whenever k rows pass the filters.

When Milvus stops answering, the mirror keeps serving its last copy (better than no
candidates), and says so: `staleness(alias)` is the age of the last answer while the
checks fail or hang, None while they succeed (`SourceHealth` has the details).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

import numpy as np

from newsrec.errors import InvalidInput
from newsrec.index.articles import StoredArticle
from newsrec.index.base import HitColumns, NewsRecord, SearchFilters, SearchHit
from newsrec.index.milvus import MilvusIndex
from newsrec.linalg import matmul_t, top_k

log = logging.getLogger("newsrec.index.memory")


@dataclass(frozen=True)
class Snapshot:
    """An immutable table of one collection; replaced, never mutated, so readers need no lock."""

    collection: str
    ids: list[str]
    vectors: np.ndarray  # (N, dim) float32
    categories: np.ndarray  # (N,) int32 codes into `category_names`
    category_names: list[str]
    subcategories: list[str]
    published_at: np.ndarray  # (N,) int64
    model_versions: list[str]
    row_of: dict[str, int]  # news id -> row
    # The string columns again as object arrays: `array[rows].tolist()` gathers the k hits
    # of a search in C (`search_columns`), where a Python loop per hit cost more than the
    # top-k itself.
    id_column: np.ndarray
    subcategory_column: np.ndarray
    category_name_column: np.ndarray

    @classmethod
    def from_records(cls, collection: str, records: Sequence[NewsRecord]) -> Snapshot:
        names = sorted({r.category for r in records})
        code = {c: i for i, c in enumerate(names)}
        dim = int(np.asarray(records[0].vector).shape[-1]) if records else 0
        return cls(
            collection=collection,
            ids=[r.news_id for r in records],
            vectors=np.stack([np.asarray(r.vector, np.float32) for r in records])
            if records
            else np.zeros((0, dim), np.float32),
            categories=np.array([code[r.category] for r in records], dtype=np.int32),
            category_names=names,
            subcategories=[r.subcategory for r in records],
            published_at=np.array([r.published_at for r in records], dtype=np.int64),
            model_versions=[r.model_version for r in records],
            row_of={r.news_id: n for n, r in enumerate(records)},
            id_column=_objects(r.news_id for r in records),
            subcategory_column=_objects(r.subcategory for r in records),
            category_name_column=_objects(names),
        )

    def records(self) -> list[NewsRecord]:
        return [
            NewsRecord(
                i,
                self.vectors[n],
                self.category_names[self.categories[n]],
                self.subcategories[n],
                int(self.published_at[n]),
                self.model_versions[n],
            )
            for n, i in enumerate(self.ids)
        ]

    def with_upserts(self, new: Sequence[NewsRecord]) -> Snapshot:
        """A new snapshot with `new` rows inserted or replaced (copy on write)."""
        by_id = {r.news_id: r for r in self.records()}
        by_id.update({r.news_id: r for r in new})
        return Snapshot.from_records(self.collection, list(by_id.values()))

    def _top(
        self, queries: np.ndarray, k: int, filters: SearchFilters | None
    ) -> tuple[np.ndarray, np.ndarray]:
        """(scores, rows) of the top-k of each query, best first; filtered-out rows score -inf."""
        scores = matmul_t(np.asarray(queries, np.float32), self.vectors)  # (n, N)
        _apply_filters(self, scores, filters)
        return top_k(scores, k)

    def search_columns(self, vector: np.ndarray, k: int, filters: SearchFilters | None) -> HitColumns:
        """The top-k of one query (shape (dim,)) as columns."""
        k_eff = min(k, len(self.ids))
        if k_eff == 0:
            return HitColumns([], [], [], [], [])
        values, rows = self._top(np.asarray(vector).reshape(1, -1), k_eff, filters)
        keep = values[0] != -np.inf
        order = rows[0][keep]
        return HitColumns(
            news_ids=self.id_column[order].tolist(),
            scores=values[0][keep].tolist(),
            categories=self.category_name_column[self.categories[order]].tolist(),
            subcategories=self.subcategory_column[order].tolist(),
            published_at=self.published_at[order].tolist(),
        )

    def search(self, vectors: np.ndarray, k: int, filters: SearchFilters | None) -> list[list[SearchHit]]:
        queries = np.asarray(vectors, np.float32)
        k_eff = min(k, len(self.ids))
        if k_eff == 0:
            return [[] for _ in range(queries.shape[0])]
        values, rows = self._top(queries, k_eff, filters)
        out = []
        ids, names, subs, versions = self.ids, self.category_names, self.subcategories, self.model_versions
        for vals, order in zip(values, rows, strict=True):
            keep = vals != -np.inf
            order = order[keep]
            # Python lists, not numpy scalar indexing per hit: ~2x cheaper at k=200 (bench/snapshot_hits.py).
            hits = zip(
                order.tolist(),
                vals[keep].tolist(),
                self.categories[order].tolist(),
                self.published_at[order].tolist(),
                strict=True,
            )
            out.append(
                [
                    SearchHit(ids[j], score, names[cat], subs[j], pub, versions[j])
                    for j, score, cat, pub in hits
                ]
            )
        return out


def _objects(strings: Iterable[str]) -> np.ndarray:
    """A 1-D object array of Python strings (np.array would make a fixed-width str array)."""
    items = list(strings)
    column = np.empty(len(items), dtype=object)
    column[:] = items
    return column


def _apply_filters(snap: Snapshot, scores: np.ndarray, filters: SearchFilters | None) -> None:
    """Set the scores of filtered-out rows to -inf in place. Excluded ids touch only
    their own columns: a history of 50 ids must not cost a pass over the whole table."""
    if filters is None:
        return
    if filters.categories or filters.published_after is not None:
        mask = np.ones(len(snap.ids), dtype=bool)
        if filters.categories:
            wanted = set(filters.categories)
            codes = [i for i, c in enumerate(snap.category_names) if c in wanted]
            mask &= np.isin(snap.categories, codes)
        if filters.published_after is not None:
            mask &= snap.published_at > filters.published_after
        scores[:, ~mask] = -np.inf
    if filters.exclude_ids:
        row_of = snap.row_of
        rows = [row_of[i] for i in filters.exclude_ids if i in row_of]
        if rows:
            scores[:, rows] = -np.inf


@dataclass(frozen=True, slots=True)
class SourceHealth:
    """How the source (Milvus) last answered the checks of one alias. Immutable and replaced
    whole, so `staleness` reads it without a lock on the search path."""

    ok_at: float  # time.monotonic() of the last successful check (or build)
    failing: bool = False  # the last check raised
    error: str = ""  # what it raised
    checking_since: float | None = None  # a check in flight started then


class MirroredIndex:
    """`VectorIndex` serving exact searches from memory, with Milvus as the versioned source of truth."""

    def __init__(
        self,
        source: MilvusIndex,
        refresh_s: float = 5.0,
        background: bool = True,
        stale_after_s: float | None = None,
    ) -> None:
        self.source = source
        self.refresh_s = refresh_s  # how often the alias target is re-checked
        # A check still in flight after this long counts as failing (a Milvus call is bounded
        # by `MilvusIndex.timeout_s`, but a frozen server or a slow network may still hold
        # one). Generous, because a check that finds a new version also fetches the whole
        # collection.
        self.stale_after_s = max(30.0, 3 * refresh_s) if stale_after_s is None else stale_after_s
        # True: a stale snapshot keeps serving while one background thread re-checks the
        # alias (and reloads after a flip). A search never waits on Milvus after the first
        # load: a lookup under the lock every 5 s stalled every search queued behind it,
        # which showed in the serving p99. False: re-check inline (tests, scripts).
        self.background = background
        self._snaps: dict[str, tuple[Snapshot, float]] = {}
        self._lock = threading.RLock()  # upsert may load the snapshot while holding it
        self._refreshing: set[str] = set()
        self._refreshing_lock = threading.Lock()
        self._health: dict[str, SourceHealth] = {}  # only for aliases with a snapshot
        self._health_lock = threading.Lock()  # writers only; readers take the frozen value

    def snapshot(self, alias: str) -> Snapshot:
        """The in-memory copy of the collection behind `alias`, (re)loaded when the alias moved."""
        got = self._snaps.get(alias)
        if got is not None and time.monotonic() - got[1] < self.refresh_s:
            return got[0]
        if got is not None and self.background:
            self._refresh_in_background(alias)
            return got[0]
        with self._lock:
            return self._reload(alias)

    def _reload(self, alias: str) -> Snapshot:
        """Re-check the alias; fetch the whole collection only when it moved. Holds `_lock`."""
        now = time.monotonic()
        self._note_check(alias)
        try:
            target = self.source.resolve_alias(alias)
            got = self._snaps.get(alias)
            if got is None or got[0].collection != target:
                coll, recs = self.source.fetch_all(alias)
                got = (Snapshot.from_records(coll, recs), now)
        except Exception as exc:
            self._note_check(alias, exc)
            raise
        self._snaps[alias] = (got[0], now)
        self._note_ok(alias)
        return got[0]

    def _note_ok(self, alias: str) -> None:
        """The source answered for `alias` (a check, or a build)."""
        with self._health_lock:
            self._health[alias] = SourceHealth(time.monotonic())

    def _note_check(self, alias: str, error: Exception | None = None) -> None:
        """A check of `alias` started (`error` None) or failed. Ignored before the first load:
        a failure then reaches the caller, and no stale copy is served."""
        with self._health_lock:
            old = self._health.get(alias)
            if old is None:
                return
            if error is None:
                self._health[alias] = replace(old, checking_since=time.monotonic())
            else:
                why = f"{type(error).__name__}: {error}"[:500]
                self._health[alias] = replace(old, failing=True, error=why, checking_since=None)

    def health(self, alias: str) -> SourceHealth | None:
        """The source's last answer for `alias` (None: no snapshot loaded yet)."""
        return self._health.get(alias)

    def staleness(self, alias: str) -> float | None:
        """Seconds since the source last answered, while its checks fail (or one has hung
        for `stale_after_s`): the copy being served may be behind. None when healthy.
        A dict lookup and two compares on the healthy path: Retrieve calls it every time."""
        h = self._health.get(alias)
        if h is None:
            return None
        if not h.failing:
            since = h.checking_since
            if since is None:
                return None
            now = time.monotonic()
            return now - h.ok_at if now - since > self.stale_after_s else None
        return time.monotonic() - h.ok_at

    def _refresh_in_background(self, alias: str) -> None:
        with self._refreshing_lock:
            if alias in self._refreshing:
                return
            self._refreshing.add(alias)
        threading.Thread(
            target=self._refresh, args=(alias,), name=f"mirror-refresh-{alias}", daemon=True
        ).start()

    def _refresh(self, alias: str) -> None:
        try:
            with self._lock:
                try:
                    self._reload(alias)
                except Exception:
                    # Milvus unreachable: keep serving the copy we have, try again later.
                    log.warning("mirror refresh failed; serving the previous snapshot", exc_info=True)
                    got = self._snaps.get(alias)
                    if got is not None:
                        self._snaps[alias] = (got[0], time.monotonic())
        finally:
            with self._refreshing_lock:
                self._refreshing.discard(alias)

    def build_version(self, alias: str, version: str, records: Sequence[NewsRecord]) -> str:
        coll = self.source.build_version(alias, version, records)
        with self._lock:
            self._snaps[alias] = (Snapshot.from_records(coll, records), time.monotonic())
        self._note_ok(alias)
        return coll

    def upsert(self, alias: str, records: Sequence[NewsRecord]) -> None:
        self.source.upsert(alias, records)  # Milvus first: it is the source of truth
        with self._lock:
            snap = self.snapshot(alias) if alias not in self._snaps else self._snaps[alias][0]
            if snap.vectors.shape[1] != np.asarray(records[0].vector).shape[-1]:
                raise InvalidInput(f"upsert into {alias}: dimension differs from the collection")
            self._snaps[alias] = (snap.with_upserts(records), time.monotonic())

    # Upserted articles live in the source only: the copy holds vectors, and a restart reloads
    # the articles from where they are durable.
    def put_articles(self, alias: str, articles: Sequence[StoredArticle]) -> None:
        self.source.put_articles(alias, articles)

    def load_articles(self, alias: str) -> tuple[list[StoredArticle], list[str]]:
        return self.source.load_articles(alias)

    def search(
        self, alias: str, vectors: np.ndarray, k: int, filters: SearchFilters | None = None
    ) -> list[list[SearchHit]]:
        queries = _checked_query(vectors, k, 2, "query vectors", "(n, dim)")
        return self.snapshot(alias).search(queries, k, filters)

    def search_columns(
        self, alias: str, vector: np.ndarray, k: int, filters: SearchFilters | None = None
    ) -> HitColumns:
        query = _checked_query(vector, k, 1, "query vector", "(dim,)")
        return self.snapshot(alias).search_columns(query, k, filters)

    def count(self, alias: str) -> int:
        return len(self.snapshot(alias).ids)

    def resolve_alias(self, alias: str) -> str:
        return self.snapshot(alias).collection


def _checked_query(vectors: np.ndarray, k: int, ndim: int, what: str, shape: str) -> np.ndarray:
    """`vectors` as float32, after checking k and that they have `ndim` axes (`shape` names them)."""
    if k <= 0:
        raise InvalidInput(f"k={k}: must be positive")
    out = np.asarray(vectors, dtype=np.float32)
    if out.ndim != ndim:
        raise InvalidInput(f"{what} must have shape {shape}, got {out.shape}")
    return out


def exact_search(index_vectors: np.ndarray, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Top-k (indices, scores) by inner product: the exact baseline of the benchmark."""
    scores = queries @ index_vectors.T
    k = min(k, scores.shape[1])
    top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    part = np.take_along_axis(scores, top, axis=1)
    order = np.argsort(-part, axis=1)
    return np.take_along_axis(top, order, axis=1), np.take_along_axis(part, order, axis=1)
