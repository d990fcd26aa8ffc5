"""Milvus itself down, not the retrieval server: the trained tiny model, a private Milvus Lite
file and the stack on loopback gRPC.

Taking Milvus down for real: `MilvusIndex.close(stop_lite=True)` stops the Milvus Lite server
process, and moving its data directory away keeps pymilvus from starting a new one, so every
Milvus call of the serving process fails at once (a SIGKILLed server fails each call within
`milvus_timeout_seconds`; tests/integration/index/test_milvus_timeout.py covers that). Moving
the directory back is Milvus coming back.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest

from newsrec.data import read_behaviors
from newsrec.index.memory import MirroredIndex
from newsrec.index.milvus import MilvusIndex
from services.catalog import popular_fresh
from services.config import ServeConfig
from services.generated.newsrec.v1 import (
    common_pb2,
    recommend_pb2,
    recommend_pb2_grpc,
    retrieval_pb2,
    retrieval_pb2_grpc,
)
from services.loading import load_variant
from services.stack import Stack, start_stack

REFRESH_S = 0.1  # the mirror re-checks Milvus this often (5 s in production)


@dataclass
class MilvusWorld:
    stack: Stack
    milvus: MilvusIndex
    db_dir: Path
    users: list[tuple[str, list[str]]]
    fallback_ids: list[str]  # the gateway's popular-and-fresh list, best first
    dim: int  # of the served vectors
    down: bool = False

    @property
    def _away(self) -> Path:
        return self.db_dir.with_name(self.db_dir.name + ".down")

    def take_milvus_down(self) -> None:
        self.milvus.close(stop_lite=True)  # the Lite server process exits ...
        self.db_dir.rename(self._away)  # ... and cannot be restarted: its data directory is gone
        self.down = True

    def bring_milvus_back(self) -> None:
        self._away.rename(self.db_dir)
        self.down = False

    def recommend(self, user: str, history: list[str]) -> recommend_pb2.RecommendResponse:
        with grpc.insecure_channel(f"127.0.0.1:{self.stack.ports['gateway']}") as ch:
            stub = recommend_pb2_grpc.RecommendServiceStub(ch)
            req = recommend_pb2.RecommendRequest(user_id=user, history_ids=history, k=10)
            return stub.Recommend(req, timeout=10)

    def retrieve(self, request: retrieval_pb2.RetrieveRequest) -> retrieval_pb2.RetrieveResponse:
        with grpc.insecure_channel(f"127.0.0.1:{self.stack.ports['retrieval/a']}") as ch:
            return retrieval_pb2_grpc.RetrievalServiceStub(ch).Retrieve(request, timeout=10)

    def sample(self, name: str, labels: dict[str, str]) -> float | None:
        return self.stack.registry.get_sample_value(name, {"variant": "a", **labels})


def _world(trained_run: Path, tmp: Path, mirror: bool) -> Iterator[MilvusWorld]:
    db_dir = tmp / "milvus"
    db_dir.mkdir()
    news = [trained_run / "data/train/news.tsv", trained_run / "data/dev/news.tsv"]
    cfg = ServeConfig.model_validate(
        {
            "serving_dir": str(trained_run / "serving"),
            "model_name": "mdown",
            "milvus_uri": str(db_dir / "milvus.db"),
            "index_mirror": False,  # mirror on: wrapped below with a short refresh interval
            "news_files": [str(p) for p in news],
            "grpc_port": 0,
            "metrics_port": None,
        }
    )
    deps = load_variant(cfg, with_provider=False)  # builds the collection in the fresh file
    milvus = deps.index
    assert isinstance(milvus, MilvusIndex)
    if mirror:
        deps = dataclasses.replace(deps, index=MirroredIndex(milvus, refresh_s=REFRESH_S))
    gw = cfg.gateway.model_copy(
        update={
            # generous: a loaded CI machine must not turn slowness into a degraded answer
            "timeouts": cfg.gateway.timeouts.model_copy(
                update={"encode_user": 5.0, "retrieve": 5.0, "rank": 5.0}
            ),
        }
    )
    stack = start_stack(cfg.model_copy(update={"gateway": gw}), {"a": deps})
    world: MilvusWorld | None = None
    try:
        stack.wait_ready(60)
        impressions, _ = read_behaviors(trained_run / "data/dev/behaviors.tsv")
        users: dict[str, list[str]] = {}
        for imp in impressions:
            if imp.history:
                users.setdefault(imp.user_id, imp.history)
        fallback = popular_fresh(deps.catalog, gw.fallback_size, gw.freshness_half_life_hours)
        fallback_ids = [i.news_id for i, _ in fallback]
        world = MilvusWorld(stack, milvus, db_dir, list(users.items()), fallback_ids, deps.model.dim)
        yield world
    finally:
        stack.stop(0)
        if world is not None and world.down:
            world.bring_milvus_back()
        milvus.close(stop_lite=True)  # no Lite server process outlives the test


@pytest.fixture
def mirrored(trained_run: Path, tmp_path: Path) -> Iterator[MilvusWorld]:
    yield from _world(trained_run, tmp_path, mirror=True)


@pytest.fixture
def bare(trained_run: Path, tmp_path: Path) -> Iterator[MilvusWorld]:
    yield from _world(trained_run, tmp_path, mirror=False)


def _until(cond: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(REFRESH_S / 2)


def _ids(resp: recommend_pb2.RecommendResponse) -> list[str]:
    return [i.news_id for i in resp.items]


@pytest.mark.timeout(120)
def test_milvus_down_behind_the_mirror_serves_the_stale_copy_and_says_so(mirrored: MilvusWorld) -> None:
    user, history = mirrored.users[0]
    healthy = mirrored.recommend(user, history)
    assert not healthy.degraded, healthy.degraded_reasons
    assert len(healthy.items) == 10
    up, stale = "newsrec_retrieval_index_source_up", "newsrec_retrieval_index_stale_seconds"
    assert mirrored.sample(up, {}) == 1.0 and mirrored.sample(stale, {}) == 0.0

    mirrored.take_milvus_down()
    # each Recommend is a search; a search older than REFRESH_S starts a background check
    _until(lambda: mirrored.recommend(user, history).degraded)
    resp = mirrored.recommend(user, history)
    assert list(resp.degraded_reasons) == ["index_stale"]
    # still personalised: the same answer as before, from the in-memory copy; not the fallback
    assert _ids(resp) == _ids(healthy) and all(i.title for i in resp.items)
    assert _ids(resp) != [n for n in mirrored.fallback_ids if n not in set(history)][:10]
    counted = mirrored.sample("newsrec_gateway_degraded_total", {"reason": "index_stale"})
    assert counted is not None and counted > 0
    assert mirrored.sample(up, {}) == 0.0
    age = mirrored.sample(stale, {})
    assert age is not None and age > 0
    # the retrieval answer itself carries the reason (the gateway only copies it)
    direct = mirrored.retrieve(retrieval_pb2.RetrieveRequest(vector=[0.1] * mirrored.dim, k=5))
    assert len(direct.news_ids) == 5 and list(direct.degraded_reasons) == ["index_stale"]

    mirrored.bring_milvus_back()
    _until(lambda: not mirrored.recommend(user, history).degraded)
    assert mirrored.sample(up, {}) == 1.0 and mirrored.sample(stale, {}) == 0.0


@pytest.mark.timeout(120)
def test_milvus_down_without_mirror_answers_popular_fresh(bare: MilvusWorld) -> None:
    user, history = bare.users[1]
    healthy = bare.recommend(user, history)
    assert not healthy.degraded, healthy.degraded_reasons
    bare.take_milvus_down()
    resp = bare.recommend(user, history)  # no error: the gateway degrades
    assert resp.degraded and list(resp.degraded_reasons) == ["retrieval_unavailable"]
    assert _ids(resp) == [n for n in bare.fallback_ids if n not in set(history)][:10]
    counted = bare.sample("newsrec_gateway_degraded_total", {"reason": "retrieval_unavailable"})
    assert counted is not None and counted > 0
    # a bare Milvus index never claims a stale copy and exports no source gauge
    assert bare.sample("newsrec_retrieval_index_source_up", {}) is None
    assert bare.sample("newsrec_gateway_degraded_total", {"reason": "index_stale"}) == 0.0  # started at 0
    with pytest.raises(grpc.RpcError) as err:
        bare.retrieve(retrieval_pb2.RetrieveRequest(vector=[0.1] * bare.dim, k=5))
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE


def test_retrieve_checks_the_category_filter(mirrored: MilvusWorld) -> None:
    def retrieve(categories: list[str]) -> retrieval_pb2.RetrieveResponse:
        filters = common_pb2.RetrievalFilters(categories=categories)
        request = retrieval_pb2.RetrieveRequest(vector=[0.1] * mirrored.dim, k=5, filters=filters)
        return mirrored.retrieve(request)

    assert not retrieve(["sports", "news"]).degraded_reasons
    for bad, why in (
        (["x"] * 101, "filters.categories: at most 100"),
        (["news", " "], "filters.categories[1]"),
    ):
        with pytest.raises(grpc.RpcError) as err:
            retrieve(bad)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert why in (err.value.details() or ""), err.value.details()
