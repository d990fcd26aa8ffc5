"""The whole Recommend path with a really trained tiny model, Milvus Lite, Redis and gRPC on loopback."""

from __future__ import annotations

import dataclasses
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from svc_helpers import RedisProc, start_redis, versioned_copy

from newsrec.data import read_behaviors
from newsrec.data.types import NewsArticle
from services import ab
from services.cache import RedisVectorCache, redis_client
from services.config import ServeConfig, VariantConfig
from services.generated.newsrec.v1 import (
    news_pb2,
    news_pb2_grpc,
    ranking_pb2,
    ranking_pb2_grpc,
    recommend_pb2,
    recommend_pb2_grpc,
    retrieval_pb2,
    retrieval_pb2_grpc,
)
from services.loading import load_variant
from services.stack import Stack, VariantDeps, start_stack


@dataclass
class World:
    run: Path
    stack: Stack
    redis: RedisProc
    variants: dict[str, VariantDeps]
    users: list[tuple[str, list[str]]]

    def stub(self) -> recommend_pb2_grpc.RecommendServiceStub:
        return recommend_pb2_grpc.RecommendServiceStub(
            grpc.insecure_channel(f"127.0.0.1:{self.stack.ports['gateway']}")
        )


@pytest.fixture(scope="module")
def shared(trained_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """Two published versions of the trained model in a real registry, each loaded the way
    `serve` loads it (registry -> serving artifact -> Milvus Lite alias -> provider)."""
    from newsrec.registry import Registry

    tmp = tmp_path_factory.mktemp("svc_stack")
    news = [trained_run / "data/train/news.tsv", trained_run / "data/dev/news.tsv"]
    registry = Registry(tmp / "registry")
    out: dict[str, Any] = {"news": news}
    for name, version in (("a", "v1"), ("b", "v2")):
        serving = versioned_copy(trained_run / "serving", tmp / f"serving_{version}", version)
        registry.publish(
            "svc-test",
            version,
            {"serving": serving},
            config={},
            metrics={},
            embedding={"provider": "local", "model": "all-MiniLM-L6-v2", "dimensions": 384},
            index_info={
                "uri": str(tmp / "milvus.db"),
                "collection": f"news_svc_test_{version}",
                "alias": f"news_svc_test_{name}",
            },
        )
        cfg = ServeConfig.model_validate(
            {
                "registry": str(tmp / "registry"),
                "model_name": "svc-test",
                "model_version": version,
                "news_files": [str(p) for p in news],
            }
        )
        out[name] = load_variant(cfg)
    out["provider"] = out["a"].provider
    impressions, _ = read_behaviors(trained_run / "data/dev/behaviors.tsv")
    users: dict[str, list[str]] = {}
    for imp in impressions:
        if imp.history:
            users.setdefault(imp.user_id, imp.history)
    out["users"] = list(users.items())
    yield out


def _world(shared: dict[str, Any], weights: tuple[float, float] = (70, 30)) -> World:
    redis = start_redis()
    variants = {}
    for name, weight in zip(("a", "b"), weights, strict=True):
        loaded: VariantDeps = shared[name]
        cache = RedisVectorCache(
            redis_client(redis.url, 0.05), 60, prefix=f"svc-test:{name}:", retry_after=0.2
        )
        variants[name] = dataclasses.replace(loaded, cache=cache, weight=weight)
    cfg = ServeConfig.model_validate(
        {
            "grpc_port": 0,
            "metrics_port": 0,
            "gateway": {
                # generous: a loaded CI machine must not turn slowness into a degraded answer
                "timeouts": {"encode_user": 5, "retrieve": 5, "rank": 5},
                "variants": [
                    {"name": n, "model_version": v.model.model_version, "weight": v.weight}
                    | {"user_encoder": "-", "retrieval": "-", "ranker": "-"}
                    for n, v in variants.items()
                ],
            },
        }
    )
    stack = start_stack(cfg, dict(variants))
    stack.wait_ready(60)
    return World(Path("."), stack, redis, variants, shared["users"])


@pytest.fixture
def world(shared: dict[str, Any]) -> Iterator[World]:
    w = _world(shared)
    yield w
    w.stack.stop(0)
    w.redis.kill()


@pytest.fixture(scope="module")
def module_world(shared: dict[str, Any]) -> Iterator[World]:
    w = _world(shared)
    yield w
    w.stack.stop(0)
    w.redis.kill()


def _req(user: str, history: list[str], k: int = 10, variant: str = "") -> recommend_pb2.RecommendRequest:
    return recommend_pb2.RecommendRequest(user_id=user, history_ids=history, k=k, forced_variant=variant)


def test_recommend_whole_path_and_cache(module_world: World) -> None:
    stub = module_world.stub()
    user, history = module_world.users[0]
    first = stub.Recommend(_req(user, history + ["N-not-a-news"], variant="a"), timeout=5)
    assert not first.degraded, first.degraded_reasons
    assert first.variant == "a" and first.model_version == module_world.variants["a"].model.model_version
    assert len(first.items) == 10 and all(item.title and item.category for item in first.items)
    assert not set(history) & {item.news_id for item in first.items}
    assert first.unknown_history_count == 1 and not first.cache_hit
    assert [s.stage for s in first.stage_latencies] == ["encode_user", "retrieve", "rank", "total"]
    # the ranker really re-scored: its order is by its own scores
    scores = [item.score for item in first.items]
    assert scores == sorted(scores, reverse=True)
    registry = module_world.stack.registry
    encoder_calls = {"method": "EncodeUser", "code": "OK", "variant": "a"}
    before = registry.get_sample_value("newsrec_user_encoder_request_seconds_count", encoder_calls)
    again = stub.Recommend(_req(user, history + ["N-not-a-news"], variant="a"), timeout=5)
    assert again.cache_hit and [i.news_id for i in again.items] == [i.news_id for i in first.items]
    assert again.unknown_history_count == 1 and again.model_version == first.model_version
    # the gateway read the vector from Redis itself (pinned version): no encoder hop
    assert registry.get_sample_value("newsrec_user_encoder_request_seconds_count", encoder_calls) == before
    hits = registry.get_sample_value("newsrec_gateway_user_cache_total", {"variant": "a", "result": "hit"})
    assert hits is not None and hits >= 1


def test_rank_top_k_is_the_head_of_the_full_ranking(module_world: World) -> None:
    """The gateway asks the ranker for only k items; they must be the best k of all."""
    port = module_world.stack.ports["ranker/a"]
    stub = ranking_pb2_grpc.RankingServiceStub(grpc.insecure_channel(f"127.0.0.1:{port}"))
    model = module_world.variants["a"].model
    user, history = module_world.users[1]
    vector, _ = model.encode_user(history)
    cands = [n for n in model.news_ids() if n not in set(history)][:60]

    def rank(top_k: int) -> list[tuple[str, float]]:
        req = ranking_pb2.RankRequest(
            user_id=user, user_vector=vector.tolist(), history_ids=history, candidate_ids=cands, top_k=top_k
        )
        return [(c.news_id, c.score) for c in stub.Rank(req, timeout=5).candidates]

    full = rank(0)
    assert len(full) == len(cands)
    assert rank(7) == full[:7]
    assert rank(500) == full


def test_ab_split_and_stability(module_world: World) -> None:
    stub = module_world.stub()
    cfg = [
        VariantConfig(name=n, weight=w, user_encoder="-", retrieval="-", ranker="-")
        for n, w in (("a", 70), ("b", 30))
    ]
    n = 300
    got = {}
    for i in range(n):
        resp = stub.Recommend(_req(f"ab-user-{i}", [], k=1), timeout=5)
        got[i] = resp.variant
        assert resp.variant == ab.assign(cfg, "newsrec-ab-v1", f"ab-user-{i}").name
        assert resp.model_version == module_world.variants[resp.variant].model.model_version
    share_b = sum(v == "b" for v in got.values()) / n
    assert abs(share_b - 0.3) < 0.1, share_b  # sd ~0.026 at n=300
    for i in range(0, n, 20):  # stable: same user, same variant
        assert stub.Recommend(_req(f"ab-user-{i}", [], k=1), timeout=5).variant == got[i]


def test_metrics_endpoint_has_variant_histograms(module_world: World) -> None:
    stub = module_world.stub()
    user, history = module_world.users[1]
    stub.Recommend(_req(user, history, variant="b"), timeout=5)
    body = (
        urllib.request.urlopen(f"http://127.0.0.1:{module_world.stack.metrics_port}/metrics", timeout=5)
        .read()
        .decode()
    )
    assert (
        'newsrec_gateway_request_seconds_bucket{code="OK",le="0.05",method="Recommend",variant="b"}' in body
    )
    assert 'newsrec_gateway_stage_seconds_count{stage="retrieve",variant="b"}' in body
    assert 'newsrec_user_encoder_request_seconds_count{code="OK",method="EncodeUser",variant="b"}' in body
    assert 'newsrec_retrieval_index_size{variant="b"}' in body
    assert "newsrec_user_encoder_cache_hit_ratio" in body


def test_upsert_news_is_retrievable_at_once(module_world: World, shared: dict[str, Any]) -> None:
    port = module_world.stack.ports["retrieval/a"]
    with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
        resp = news_pb2_grpc.NewsServiceStub(ch).UpsertNews(
            news_pb2.UpsertNewsRequest(
                news_id="NCOLD1",
                title="Local team wins the championship after dramatic final",
                abstract="Fans celebrated downtown late into the night.",
                category="sports",
                subcategory="football",
                entities=[news_pb2.NewsEntity(wikidata_id="Q123", label="Team")],
            ),
            timeout=30,
        )
        assert resp.dim == module_world.variants["a"].model.dim and resp.collection
        model = module_world.variants["a"].model
        article = NewsArticle(
            "NCOLD1",
            "sports",
            "football",
            "Local team wins the championship after dramatic final",
            "Fans celebrated downtown late into the night.",
        )
        vec = model.encode_news(article, shared["provider"].embed([article.text()]).vectors[0])
        got = retrieval_pb2_grpc.RetrievalServiceStub(ch).Retrieve(
            retrieval_pb2.RetrieveRequest(vector=(vec / np.linalg.norm(vec)).tolist(), k=5), timeout=5
        )
    assert got.news_ids[0] == "NCOLD1"
    assert got.titles[0].startswith("Local team wins")


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    user=st.text(max_size=300),
    history=st.lists(st.text(max_size=300), max_size=600),
    k=st.integers(min_value=-5, max_value=800),
    variant=st.sampled_from(["", "a", "b", "zz", "A"]),
)
def test_bad_input_never_internal(
    module_world: World, user: str, history: list[str], k: int, variant: str
) -> None:
    try:
        module_world.stub().Recommend(_req(user, history, k, variant), timeout=5)
    except grpc.RpcError as exc:
        assert exc.code() == grpc.StatusCode.INVALID_ARGUMENT, (exc.code(), exc.details())
        assert "Traceback" not in (exc.details() or "") and exc.details()


def test_redis_down_computes_without_cache(world: World) -> None:
    stub = world.stub()
    user, history = world.users[2]
    assert not stub.Recommend(_req(user, history, variant="a"), timeout=5).degraded
    world.redis.kill()
    resp = stub.Recommend(_req(user, history, variant="a"), timeout=5)
    assert resp.degraded and list(resp.degraded_reasons) == ["cache_unavailable"]
    assert len(resp.items) == 10 and not resp.cache_hit


def test_retrieval_down_gives_popular_fresh_fallback(world: World) -> None:
    stub = world.stub()
    user, history = world.users[3]
    world.stack.servers["retrieval/a"].stop(0).wait()
    resp = stub.Recommend(_req(user, history, variant="a"), timeout=5)
    assert resp.degraded and "retrieval_unavailable" in resp.degraded_reasons
    assert len(resp.items) == 10 and all(i.title for i in resp.items)
    assert not set(history) & {i.news_id for i in resp.items}


def test_ranker_down_gives_retrieval_order(world: World) -> None:
    stub = world.stub()
    user, history = world.users[4]
    world.stack.servers["ranker/b"].stop(0).wait()
    resp = stub.Recommend(_req(user, history, variant="b"), timeout=5)
    assert resp.degraded and list(resp.degraded_reasons) == ["ranker_unavailable"]
    scores = [i.score for i in resp.items]
    assert len(scores) == 10 and scores == sorted(scores, reverse=True)


class _Slow:
    """Wraps the real model; rank() sleeps first (a slow in-flight call for the drain test)."""

    def __init__(self, model: Any, delay: float) -> None:
        self._model, self._delay = model, delay

    def __getattr__(self, name: str) -> Any:
        return getattr(self._model, name)

    def rank(self, *args: Any, **kwargs: Any) -> np.ndarray:
        time.sleep(self._delay)
        return np.asarray(self._model.rank(*args, **kwargs))


def test_health_transitions_and_drain(shared: dict[str, Any]) -> None:
    from services import ranker

    model = shared["a"].model
    gate = threading.Event()

    def load() -> ranker.RankerDeps:
        gate.wait(10)
        return ranker.RankerDeps(_Slow(model, 0.6))  # type: ignore[arg-type]

    cfg = ServeConfig.model_validate({"grpc_port": 0, "metrics_port": None, "host": "127.0.0.1"})
    server, port = ranker.create_server(cfg, load)
    with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
        health = health_pb2_grpc.HealthStub(ch)
        assert health.Check(health_pb2.HealthCheckRequest(), timeout=2).status == 2  # NOT_SERVING
        gate.set()
        assert server.ready.wait(10)
        assert health.Check(health_pb2.HealthCheckRequest(), timeout=2).status == 1  # SERVING
        from services.generated.newsrec.v1 import ranking_pb2, ranking_pb2_grpc

        ids = model.news_ids()[:50]
        req = ranking_pb2.RankRequest(user_id="u", user_vector=[0.1] * model.dim, candidate_ids=ids)
        fut = ranking_pb2_grpc.RankingServiceStub(ch).Rank.future(req, timeout=10)
        time.sleep(0.2)
        done = server.stop(grace=5)
        resp = fut.result()  # completes during the grace period
        assert len(resp.candidates) == 50
        assert done.wait(5)


def test_services_name_the_model_by_its_registry_version(trained_run: Path, tmp_path: Path) -> None:
    """The artifact was exported before the pipeline settled the version; online, the
    registry's version is the model's name (responses, cache keys, Milvus records)."""
    import json

    from newsrec.registry import Registry

    exported = json.loads((trained_run / "serving/config.json").read_text())["model_version"]
    assert exported != "v7"
    Registry(tmp_path / "registry").publish(
        "named",
        "v7",
        {"serving": trained_run / "serving"},
        config={},
        metrics={},
        embedding={"provider": "local", "model": "all-MiniLM-L6-v2", "dimensions": 384},
        index_info={"uri": str(tmp_path / "milvus.db"), "collection": "news_named_v7", "alias": "news_named"},
    )
    cfg = ServeConfig.model_validate(
        {"registry": str(tmp_path / "registry"), "model_name": "named", "model_version": "v7"}
    )
    deps = load_variant(cfg, with_provider=False)
    assert deps.model.model_version == "v7"
    hits = deps.index.search(deps.alias, deps.model.news_vectors()[:1], 3)[0]
    assert hits and {h.model_version for h in hits} == {"v7"}
