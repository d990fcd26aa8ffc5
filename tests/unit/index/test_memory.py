"""Exact in-memory snapshot search: ordering, filters, upserts (no Milvus needed)."""

from __future__ import annotations

import threading
import time
from typing import cast

import numpy as np
import pytest

from newsrec.errors import InvalidInput
from newsrec.index import HitColumns, NewsRecord, SearchFilters
from newsrec.index.memory import MirroredIndex, Snapshot, exact_search
from newsrec.index.milvus import IndexSpec, MilvusIndex, collection_name, filter_expr, fingerprint, sanitize


def _recs(n: int = 200, dim: int = 8) -> list[NewsRecord]:
    rng = np.random.default_rng(3)
    v = rng.normal(size=(n, dim)).astype(np.float32)
    return [NewsRecord(f"N{i}", v[i], ["a", "b", "c"][i % 3], "s", i, "v1") for i in range(n)]


def test_snapshot_search_matches_brute_force_with_filters() -> None:
    recs = _recs()
    snap = Snapshot.from_records("news_m_v1", recs)
    mat = np.stack([r.vector for r in recs])
    q = mat[:3] + 0.01
    idx, _ = exact_search(mat, q, 10)
    hits = snap.search(q, 10, None)
    assert [[h.news_id for h in row] for row in hits] == [[f"N{j}" for j in row] for row in idx]
    f = SearchFilters(exclude_ids=("N0", "N3"), categories=("a",), published_after=50)
    got = snap.search(q, 500, f)[0]
    want = [i for i in range(200) if i % 3 == 0 and i > 50]
    assert sorted(int(h.news_id[1:]) for h in got) == want  # everything allowed, nothing else
    assert [h.score for h in got] == sorted((h.score for h in got), reverse=True)


def test_search_columns_match_search_hits_column_by_column() -> None:
    recs = [
        NewsRecord(r.news_id, r.vector, r.category, f"sub{i % 7}", 1_000 + i, "v1")
        for i, r in enumerate(_recs())
    ]
    snap = Snapshot.from_records("news_m_v1", recs)
    q = recs[4].vector + 0.01
    for f in (None, SearchFilters(exclude_ids=("N4", "N10"), categories=("b", "c"), published_after=1_020)):
        hits = snap.search(q[None, :], 30, f)[0]
        cols = snap.search_columns(q, 30, f)
        assert len(cols) == len(hits) == 30
        assert cols == HitColumns.from_hits(hits)
        assert all(type(x) is str for x in cols.news_ids + cols.categories + cols.subcategories)
        assert all(type(x) is int for x in cols.published_at) and all(type(x) is float for x in cols.scores)
    # filters that leave fewer than k rows give only those rows, never an excluded one
    narrow = SearchFilters(categories=("a",), published_after=1_180)
    few = snap.search_columns(q, 50, narrow)
    assert few.news_ids == [h.news_id for h in snap.search(q[None, :], 50, narrow)[0]]
    assert all(int(i[1:]) % 3 == 0 and int(i[1:]) > 180 for i in few.news_ids) and 0 < len(few) < 50
    empty = Snapshot.from_records("empty", [])
    assert len(empty.search_columns(np.zeros(8, np.float32), 5, None)) == 0


def test_upsert_replaces_and_adds() -> None:
    snap = Snapshot.from_records("c", _recs(10))
    new = snap.with_upserts(
        [
            NewsRecord("N1", np.full(8, 9.0, np.float32), "z", "s", 99, "v1"),
            NewsRecord("X", np.full(8, -9.0, np.float32), "a", "s", 5, "v1"),
        ]
    )
    assert len(new.ids) == 11 and len(snap.ids) == 10  # copy on write
    top = new.search(np.ones((1, 8), np.float32), 1, SearchFilters(categories=("z",)))[0]
    assert top[0].news_id == "N1" and top[0].published_at == 99


def test_names_filters_fingerprint() -> None:
    assert sanitize("two-tower.v1") == "two_tower_v1"
    assert collection_name("news_tt", "2024-01-01") == "news_tt_2024_01_01"
    with pytest.raises(InvalidInput):
        sanitize("  ")
    expr = filter_expr(SearchFilters(exclude_ids=('a"b',), categories=("x",), published_after=7))
    assert expr == 'news_id not in ["a\\"b"] and category in ["x"] and published_at > 7'
    assert filter_expr(None) == "" and filter_expr(SearchFilters()) == ""
    recs = _recs(5)
    assert fingerprint(recs, IndexSpec()) == fingerprint(list(recs), IndexSpec())
    assert fingerprint(recs, IndexSpec()) != fingerprint(recs, IndexSpec("IVF_FLAT"))
    assert fingerprint(recs, IndexSpec()) != fingerprint(recs[:4], IndexSpec())


class _Source:
    """The three calls `MirroredIndex` makes on its Milvus source, over a dict (a unit test of
    the mirror's locking; tests/integration/index runs the same against Milvus Lite)."""

    def __init__(self, records: list[NewsRecord]) -> None:
        self.rows = {r.news_id: r for r in records}

    def resolve_alias(self, alias: str) -> str:
        return "news_m_v1"

    def fetch_all(self, alias: str) -> tuple[str, list[NewsRecord]]:
        return "news_m_v1", list(self.rows.values())

    def upsert(self, alias: str, records: list[NewsRecord]) -> None:
        self.rows.update({r.news_id: r for r in records})


@pytest.mark.timeout(20)
def test_mirror_upsert_as_first_call_does_not_deadlock() -> None:
    mirror = MirroredIndex(cast(MilvusIndex, _Source(_recs(10))))
    new = NewsRecord("FRESH", np.full(8, 5.0, np.float32), "a", "s", 7, "v2")
    worker = threading.Thread(target=mirror.upsert, args=("news_m", [new]), daemon=True)
    worker.start()
    worker.join(10)  # a self-deadlock on the mirror's lock never returns
    assert not worker.is_alive(), "upsert on a cold alias deadlocked"
    assert mirror.count("news_m") == 11
    top = mirror.search("news_m", np.ones((1, 8), np.float32), 1)[0][0]
    assert (top.news_id, top.model_version) == ("FRESH", "v2")


class _SlowFlippingSource(_Source):
    """A source whose alias lookups take time, then fail, then point at a new collection."""

    def __init__(self, records: list[NewsRecord]) -> None:
        super().__init__(records)
        self.target = "news_m_v1"
        self.lookup_gate = threading.Event()
        self.lookup_gate.set()
        self.fail = False

    def resolve_alias(self, alias: str) -> str:
        self.lookup_gate.wait(10)
        if self.fail:
            raise ConnectionError("milvus is down")
        return self.target

    def fetch_all(self, alias: str) -> tuple[str, list[NewsRecord]]:
        return self.target, list(self.rows.values())


@pytest.mark.timeout(30)
def test_mirror_serves_the_stale_copy_while_the_alias_is_rechecked() -> None:
    source = _SlowFlippingSource(_recs(10))
    mirror = MirroredIndex(cast(MilvusIndex, source), refresh_s=0.0)
    assert mirror.resolve_alias("news_m") == "news_m_v1"  # first load is inline
    # a slow lookup must not hold up searches: they answer from the copy they have
    source.lookup_gate.clear()
    for _ in range(20):
        assert mirror.count("news_m") == 10
    source.lookup_gate.set()
    # Milvus down: keep serving the copy
    source.fail = True
    for _ in range(20):
        assert mirror.count("news_m") == 10
    # the alias moves: the background refresh picks the new collection up
    source.fail = False
    # rows before the target: a refresh running between the two lines must not pair the
    # new collection name with the old rows (it would never reload them)
    source.rows = {r.news_id: r for r in _recs(4)}
    source.target = "news_m_v2"
    deadline = time.monotonic() + 10
    while mirror.resolve_alias("news_m") != "news_m_v2" and time.monotonic() < deadline:
        time.sleep(0.01)
    assert mirror.resolve_alias("news_m") == "news_m_v2" and mirror.count("news_m") == 4


def test_mirror_rejects_bad_k_and_query_shapes() -> None:
    mirror = MirroredIndex(cast(MilvusIndex, _Source(_recs(10))), background=False)
    q = np.ones(8, np.float32)
    with pytest.raises(InvalidInput, match="k=0"):
        mirror.search("news_m", q[None, :], 0)
    with pytest.raises(InvalidInput, match=r"k=-1"):
        mirror.search_columns("news_m", q, -1)
    with pytest.raises(InvalidInput, match=r"shape \(n, dim\)"):
        mirror.search("news_m", q, 3)
    with pytest.raises(InvalidInput, match=r"shape \(dim,\)"):
        mirror.search_columns("news_m", q[None, :], 3)
    assert len(mirror.search_columns("news_m", q, 3)) == 3
    assert len(mirror.search("news_m", q[None, :], 3)[0]) == 3
