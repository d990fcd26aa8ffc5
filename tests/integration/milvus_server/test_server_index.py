"""`MilvusIndex` against a real Milvus server (embedded standalone 2.3.5): the native alias
path (`create_alias`/`alter_alias`, which Milvus Lite answers UNIMPLEMENTED), server-side
index types, read-your-writes after upsert, filters, a crash-left collection, and the
server going away and coming back under an in-memory mirror."""

from __future__ import annotations

import threading
import time
import uuid

import numpy as np
import pytest
from milvus_proc import MilvusServerProc

from newsrec.errors import Unavailable
from newsrec.index import NewsRecord, SearchFilters
from newsrec.index.memory import MirroredIndex, exact_search
from newsrec.index.milvus import IndexSpec, MilvusIndex, collection_name

pytestmark = pytest.mark.slow
DIM = 16


def records(n: int, version: str, seed: int = 0, prefix: str = "N", dim: int = DIM) -> list[NewsRecord]:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(40, dim))
    vecs = (centres[rng.integers(0, 40, n)] + 0.6 * rng.normal(size=(n, dim))).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    cats = ["sports", "news", "finance"]
    return [
        NewsRecord(f"{prefix}{i}", vecs[i], cats[i % 3], f"sub{i % 5}", 1_000 + i, version) for i in range(n)
    ]


def fresh_alias() -> str:
    return f"news_t{uuid.uuid4().hex[:8]}"


@pytest.fixture
def index(server: MilvusServerProc) -> MilvusIndex:
    return MilvusIndex.from_uri(server.uri, timeout_s=10.0)


def test_native_alias_build_flip_and_old_version_kept(index: MilvusIndex) -> None:
    alias = fresh_alias()
    v1 = index.build_version(alias, "v1", records(200, "v1"))
    native = index.client.describe_alias(alias)  # a real server alias, not the Lite bookkeeping row
    assert native["collection_name"] == v1 == collection_name(alias, "v1")
    assert index._meta_get(f"alias:{alias}") is None
    v2 = index.build_version(alias, "v2", records(150, "v2", seed=1))
    assert index.client.describe_alias(alias)["collection_name"] == v2
    assert index.count(alias) == 150
    # keep_versions=2: v1 stays for in-flight readers; a third build drops it
    assert index.client.has_collection(v1)
    index.build_version(alias, "v3", records(100, "v3", seed=2))
    assert not index.client.has_collection(v1) and index.client.has_collection(v2)
    # the same input again is a no-op that only re-points the alias
    assert index.build_version(alias, "v2", records(150, "v2", seed=1)) == v2
    assert index.client.describe_alias(alias)["collection_name"] == v2


def test_alias_flip_under_concurrent_search(index: MilvusIndex) -> None:
    alias = fresh_alias()
    index.build_version(alias, "v1", records(300, "v1"))
    v2 = records(300, "v2", seed=3, prefix="M")
    reader = MilvusIndex.from_uri(index.uri, timeout_s=10.0)  # a serving process of its own
    q = np.stack([r.vector for r in v2[:4]])
    seen: list[set[str]] = []
    errors: list[BaseException] = []
    stop = threading.Event()

    def search() -> None:
        while not stop.is_set():
            try:
                hits = reader.search(alias, q, 5)
                seen.append({h.model_version for row in hits for h in row})
            except BaseException as exc:
                errors.append(exc)

    t = threading.Thread(target=search)
    t.start()
    try:
        time.sleep(0.5)
        index.build_version(alias, "v2", v2)
        deadline = time.monotonic() + 10
        while not (seen and seen[-1] == {"v2"}) and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        stop.set()
        t.join()
    assert not errors, errors[:3]
    assert all(s in ({"v1"}, {"v2"}) for s in seen), "a search mixed two versions"
    assert seen[0] == {"v1"} and seen[-1] == {"v2"}


def test_upsert_is_visible_at_once_and_filters(index: MilvusIndex) -> None:
    alias = fresh_alias()
    recs = records(300, "v1")
    index.build_version(alias, "v1", recs)
    new = NewsRecord("FRESH", -recs[7].vector, "weather", "s", 9_999, "v1")
    index.upsert(alias, [new])
    hits = index.search(alias, new.vector[None, :], 1)[0]  # no sleep: Strong consistency
    assert hits[0].news_id == "FRESH" and hits[0].category == "weather"
    assert index.count(alias) == 301

    q = recs[0].vector[None, :]
    f = SearchFilters(exclude_ids=("N0", "N3"), categories=("sports",), published_after=1_100)
    got = index.search(alias, q, 20, f)[0]
    assert got and all(h.category == "sports" and h.published_at > 1_100 for h in got)
    assert not {"N0", "N3"} & {h.news_id for h in got}
    # the same filters as the exact scan over the same rows
    keep = [
        r for r in recs if r.category == "sports" and r.published_at > 1_100 and r.news_id not in ("N0", "N3")
    ]
    top, _ = exact_search(np.stack([r.vector for r in keep]), q, 20)
    assert [h.news_id for h in got] == [keep[i].news_id for i in top[0]]


@pytest.mark.parametrize(
    "spec", [IndexSpec("IVF_FLAT", nlist=64, nprobe=16), IndexSpec("HNSW", m=16, ef=64)], ids=str
)
def test_server_index_types_recall_against_exact_scan(server: MilvusServerProc, spec: IndexSpec) -> None:
    index = MilvusIndex.from_uri(server.uri, spec=spec, timeout_s=10.0)
    alias = fresh_alias()
    recs = records(4_000, "v1", seed=5, dim=32)
    coll = index.build_version(alias, "v1", recs)
    info = index.client.describe_index(coll, "vector")
    assert info["index_type"] == spec.index_type
    assert int(info["indexed_rows"]) == len(recs)  # built before the flip, not brute force
    base = np.stack([r.vector for r in recs])
    rng = np.random.default_rng(9)
    q = base[rng.integers(0, len(recs), 50)] + 0.3 * rng.normal(size=(50, 32)).astype(np.float32)
    truth, _ = exact_search(base, q.astype(np.float32), 10)
    found = index.search(alias, q, 10)
    hits = [{h.news_id for h in row} for row in found]
    recall = np.mean([len(g & {recs[i].news_id for i in t}) / 10 for g, t in zip(hits, truth, strict=True)])
    assert recall >= 0.9, f"{spec.index_type} recall@10 {recall:.3f}"


def test_collection_left_half_built_by_a_crash_is_rebuilt(index: MilvusIndex) -> None:
    alias = fresh_alias()
    recs = records(500, "v1")
    coll = collection_name(alias, "v1")
    # A build that died after inserting part of the rows: the collection exists, no "built" marker.
    index._ensure_meta()
    index._create(coll, DIM)
    index._insert(coll, recs[:120])
    index.client.flush(coll)
    assert index.client.has_collection(coll) and index._meta_get(f"built:{coll}") is None
    assert index.build_version(alias, "v1", recs) == coll
    assert index.count(alias) == 500
    assert index.client.describe_alias(alias)["collection_name"] == coll


@pytest.mark.timeout(300)
def test_server_down_mirror_serves_stale_then_recovers(server: MilvusServerProc) -> None:
    alias = fresh_alias()
    recs = records(300, "v1")
    source = MilvusIndex.from_uri(server.uri, timeout_s=1.0)
    mirror = MirroredIndex(source, refresh_s=0.2)
    mirror.build_version(alias, "v1", recs)
    q = recs[4].vector
    healthy = mirror.search_columns(alias, q, 5).news_ids
    assert mirror.staleness(alias) is None

    server.stop()
    with pytest.raises(Unavailable):
        source.search(alias, q[None, :], 5)  # bounded by timeout_s, not pymilvus' 210 s
    deadline = time.monotonic() + 30
    while mirror.staleness(alias) is None:
        assert mirror.search_columns(alias, q, 5).news_ids == healthy  # answers all along
        assert time.monotonic() < deadline, "the mirror never noticed the server was down"
        time.sleep(0.1)

    server.start()  # same port, same data directory; the same client objects keep working
    deadline = time.monotonic() + 120
    while mirror.staleness(alias) is not None:
        assert mirror.search_columns(alias, q, 5).news_ids == healthy
        assert time.monotonic() < deadline, "the mirror never recovered"
        time.sleep(0.2)
    # The restarted server answers alias lookups at once, but reloads its collections in the
    # background ("collection not loaded" for a while): the mirror serves meanwhile.
    while True:
        try:
            direct = [h.news_id for h in source.search(alias, q[None, :], 5)[0]]
            break
        except Exception:
            assert time.monotonic() < deadline, "the restarted server never reloaded the collection"
            assert mirror.search_columns(alias, q, 5).news_ids == healthy
            time.sleep(0.5)
    assert direct == healthy
    fresh = NewsRecord("AFTER", -recs[1].vector, "news", "s", 5_000, "v1")
    mirror.upsert(alias, [fresh])  # writes reach the restarted server
    assert source.search(alias, fresh.vector[None, :], 1)[0][0].news_id == "AFTER"
