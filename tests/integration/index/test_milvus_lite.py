"""MilvusIndex against a real Milvus Lite (milvus-lite 2.5.1) in a fresh file per test."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from newsrec.errors import InvalidInput, NotFound
from newsrec.index import NewsRecord, SearchFilters
from newsrec.index.milvus import IndexSpec, MilvusIndex

DIM = 16
ALIAS = "news_tt"


def records(n: int, version: str, seed: int = 0, prefix: str = "N") -> list[NewsRecord]:
    rng = np.random.default_rng(seed)
    vecs = rng.normal(size=(n, DIM)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    cats = ["sports", "news", "finance"]
    return [
        NewsRecord(f"{prefix}{i}", vecs[i], cats[i % 3], f"sub{i % 5}", 1_000 + i, version) for i in range(n)
    ]


@pytest.fixture
def index(tmp_path: Path) -> Iterator[MilvusIndex]:
    idx = MilvusIndex.from_uri(str(tmp_path / "milvus.db"))
    yield idx
    idx.close(stop_lite=True)


def test_build_search_filters_and_upsert(index: MilvusIndex) -> None:
    recs = records(300, "v1")
    coll = index.build_version(ALIAS, "v1", recs)
    assert coll == "news_tt_v1"
    assert index.resolve_alias(ALIAS) == coll and index.count(ALIAS) == 300
    q = np.stack([recs[7].vector, recs[8].vector])
    hits = index.search(ALIAS, q, k=5)
    assert [h[0].news_id for h in hits] == ["N7", "N8"]
    top = hits[0][0]
    assert top.category == "news" and top.published_at == 1007 and top.model_version == "v1"
    exact = np.stack([r.vector for r in recs]) @ recs[7].vector
    assert [h.news_id for h in hits[0]] == [f"N{i}" for i in np.argsort(-exact)[:5]]

    f = SearchFilters(exclude_ids=("N7",), categories=("news", "finance"), published_after=1100)
    got = index.search(ALIAS, q[:1], k=50, filters=f)[0]
    assert got and len(got) == 50
    assert all(h.news_id != "N7" and h.category in ("news", "finance") and h.published_at > 1100 for h in got)

    # cold start: a new article is retrievable at once
    new = NewsRecord("FRESH", -recs[0].vector, "weather", "w", 5_000, "v1")
    index.upsert(ALIAS, [new])
    top = index.search(ALIAS, new.vector[None, :], k=1, filters=SearchFilters(categories=("weather",)))
    assert top[0][0].news_id == "FRESH" and index.count(ALIAS) == 301


def test_idempotent_rebuild_and_clear_errors(index: MilvusIndex) -> None:
    recs = records(100, "v1")
    index.build_version(ALIAS, "v1", recs)
    t = time.perf_counter()
    assert index.build_version(ALIAS, "v1", recs) == "news_tt_v1"  # same input: no-op
    assert time.perf_counter() - t < 5
    assert index.count(ALIAS) == 100
    with pytest.raises(InvalidInput, match="serving alias news_tt"):
        index.build_version(ALIAS, "v1", records(100, "v1", seed=1))
    with pytest.raises(InvalidInput, match="duplicate id"):
        index.build_version(ALIAS, "v2", recs + recs[:1])
    with pytest.raises(InvalidInput, match="vector shape"):
        index.build_version(ALIAS, "v2", [*recs[:3], NewsRecord("bad", np.zeros(3), "c", "s", 0, "v2")])
    with pytest.raises(NotFound, match="news_none"):
        index.search("news_none", recs[0].vector[None, :], k=3)
    assert index.resolve_alias(ALIAS) == "news_tt_v1"
    # a version that is not serving is rebuilt cleanly when its input changes
    index.build_version(ALIAS, "v2", records(50, "v2"))
    index.build_version(ALIAS, "v3", records(60, "v3"))
    assert index.count(ALIAS) == 60
    # keep_versions=2: v1 was garbage-collected, v2 kept for in-flight readers
    assert [v["version"] for v in index.versions(ALIAS)] == ["v2", "v3"]
    assert not index.client.has_collection("news_tt_v1")


def test_ivf_flat_index(tmp_path: Path) -> None:
    idx = MilvusIndex.from_uri(str(tmp_path / "ivf.db"), spec=IndexSpec("IVF_FLAT", nlist=16, nprobe=16))
    try:
        recs = records(500, "v1")
        idx.build_version(ALIAS, "v1", recs)
        assert idx.client.describe_index("news_tt_v1", "vector")["index_type"] == "IVF_FLAT"
        assert idx.search(ALIAS, recs[3].vector[None, :], k=1)[0][0].news_id == "N3"
    finally:
        idx.close(stop_lite=True)
    with pytest.raises(InvalidInput, match="index type 'IVF_PQ'"):
        IndexSpec("IVF_PQ")
    # HNSW is a server index type: Milvus Lite 2.5.1 cannot build it, said up front
    with pytest.raises(InvalidInput, match="HNSW needs a Milvus server"):
        MilvusIndex.from_uri(str(tmp_path / "hnsw.db"), spec=IndexSpec("HNSW"))


def test_alias_flip_under_concurrent_search(index: MilvusIndex) -> None:
    """A reader searching the alias during rebuilds always sees one complete version."""
    sizes = {"v1": 200, "v2": 350, "v3": 120}
    index.build_version(ALIAS, "v1", records(sizes["v1"], "v1"))
    stop = threading.Event()
    seen: list[tuple[str, int]] = []
    errors: list[str] = []
    q = np.ones((1, DIM), dtype=np.float32)

    def reader() -> None:
        while not stop.is_set():
            try:
                hits = index.search(ALIAS, q, k=1000)[0]
            except Exception as exc:  # any failure during the flip is a bug
                errors.append(f"{type(exc).__name__}: {exc}")
                return
            versions = {h.model_version for h in hits}
            if len(versions) != 1:
                errors.append(f"mixed versions {versions}")
                return
            v = versions.pop()
            seen.append((v, len(hits)))
            if len(hits) != sizes[v]:
                errors.append(f"partial version {v}: {len(hits)} of {sizes[v]}")

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        index.build_version(ALIAS, "v2", records(sizes["v2"], "v2", prefix="M"))
        index.build_version(ALIAS, "v3", records(sizes["v3"], "v3", prefix="P"))
        time.sleep(0.3)
    finally:
        stop.set()
        thread.join(timeout=30)
    assert not errors, errors[:3]
    assert {v for v, _ in seen} >= {"v1", "v3"}, "reader did not observe the flip"
    assert seen[-1] == ("v3", 120)


@pytest.mark.timeout(120)  # a lock regression in upsert hangs instead of failing
def test_mirrored_index_serves_from_memory_and_follows_alias(index: MilvusIndex) -> None:
    from newsrec.index.memory import MirroredIndex

    recs = records(300, "v1")
    index.build_version(ALIAS, "v1", recs)
    mirror = MirroredIndex(
        MilvusIndex.from_uri(index.uri, client=index.client, alias_ttl_s=0.0), refresh_s=0.0, background=False
    )
    q = np.stack([recs[1].vector, recs[2].vector])
    f = SearchFilters(exclude_ids=("N1",), categories=("news", "finance"), published_after=1010)
    from_milvus = index.search(ALIAS, q, 20, f)
    from_memory = mirror.search(ALIAS, q, 20, f)
    assert [[h.news_id for h in r] for r in from_memory] == [[h.news_id for h in r] for r in from_milvus]
    # the serving path's columns: same rows and metadata from Milvus and from the mirror
    cols_milvus = index.search_columns(ALIAS, q[0], 20, f)
    cols_memory = mirror.search_columns(ALIAS, q[0], 20, f)
    assert cols_memory.news_ids == cols_milvus.news_ids == [h.news_id for h in from_milvus[0]]
    assert cols_memory.categories == cols_milvus.categories
    assert cols_memory.published_at == cols_milvus.published_at
    assert cols_memory.subcategories == cols_milvus.subcategories
    assert np.allclose(cols_memory.scores, cols_milvus.scores, atol=1e-4)
    mirror.upsert(ALIAS, [NewsRecord("FRESH", recs[5].vector * 2, "news", "s", 9_999, "v1")])
    assert mirror.search(ALIAS, recs[5].vector[None, :], 1)[0][0].news_id == "FRESH"
    assert index.count(ALIAS) == 301  # written to Milvus too
    index.build_version(ALIAS, "v2", records(40, "v2", prefix="M"))  # flipped by another writer
    assert mirror.count(ALIAS) == 40 and mirror.resolve_alias(ALIAS) == "news_tt_v2"
    # an upsert before any search loads the table first (no deadlock, nothing lost)
    cold = MirroredIndex(MilvusIndex.from_uri(index.uri, client=index.client, alias_ttl_s=0.0))
    cold.upsert(ALIAS, [NewsRecord("LATE", recs[9].vector, "news", "s", 1, "v2")])
    assert cold.count(ALIAS) == 41
