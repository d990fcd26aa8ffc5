"""The whole Recommend path with a really trained tiny model, Milvus Lite, Redis and gRPC on loopback."""

from __future__ import annotations

import dataclasses
import re
import threading
import time
import unicodedata
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families
from stack_probe import stage_answers
from svc_helpers import RedisProc, free_port, start_redis, versioned_copy

from newsrec.data import read_behaviors
from newsrec.data.types import NewsArticle
from services import ab
from services.cache import RedisVectorCache, redis_client
from services.config import ServeConfig, VariantConfig
from services.generated.newsrec.v1 import (
    common_pb2,
    news_pb2,
    news_pb2_grpc,
    ranking_pb2,
    ranking_pb2_grpc,
    recommend_pb2,
    recommend_pb2_grpc,
    retrieval_pb2,
    retrieval_pb2_grpc,
    user_encoder_pb2,
    user_encoder_pb2_grpc,
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


def _metric_families(port: int | None) -> dict[str, Metric]:
    """The families of a metrics endpoint, parsed from its text exposition."""
    body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    return {family.name: family for family in text_string_to_metric_families(body)}


def _sample(port: int | None, name: str, **labels: str) -> float:
    """One sample's value from the metrics endpoint (0 when it has not been exported yet)."""
    family = _metric_families(port).get(name.removesuffix("_total"))
    matches = [s.value for s in (family.samples if family else []) if s.name == name and s.labels == labels]
    return float(matches[0]) if matches else 0.0


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
    # the answer is the ranker's re-scoring of retrieval's candidates, not retrieval's order
    retrieved, ranked = stage_answers(module_world.stack, "a", user, history + ["N-not-a-news"])
    assert [(i.news_id, i.score) for i in first.items] == ranked
    assert [(i.news_id, i.score) for i in first.items] != retrieved[:10]


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


# --- bad input over every RPC: OK or INVALID_ARGUMENT naming the field, never INTERNAL/UNKNOWN.
# Each property test states which field (if any) the request breaks first, in the order the
# service checks them, and asserts exactly that verdict.

DIM = 64  # the trained tiny model's output dimension (train_tiny --output-dim 64)
MAX_ID = 256
MAX_ENTITIES = 200  # per upserted article
_PROPERTY = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
_f32 = st.floats(width=32)  # NaN and infinities included
_vectors = st.one_of(
    st.lists(st.floats(-1, 1, width=32), min_size=DIM, max_size=DIM),
    st.lists(_f32, min_size=DIM, max_size=DIM),
    st.lists(_f32, max_size=DIM + 2),
)
_users = st.one_of(
    st.from_regex(r"U[0-9]{1,6}", fullmatch=True),
    st.text(max_size=MAX_ID + 4),
    st.sampled_from(["", " \t\n", "u" * (MAX_ID + 1)]),
)
_ks = st.one_of(st.integers(1, 500), st.integers(-5, 800))
_ids = st.one_of(
    st.from_regex(r"N[0-9]{1,5}", fullmatch=True),
    st.text(max_size=MAX_ID + 4),
    st.sampled_from(["", "x" * (MAX_ID + 1)]),
)


def _id_lists(limit: int) -> st.SearchStrategy[list[str]]:
    """Short lists of any ids, or well-formed lists around the size limit."""
    around = st.integers(limit - 2, limit + 2).map(lambda n: [f"N{i}" for i in range(n)])
    return st.one_of(
        st.lists(_ids, max_size=6), st.lists(st.from_regex(r"N[0-9]{1,5}", fullmatch=True)), around
    )


def _has_cc(text: str) -> bool:
    """A control character (Unicode Cc), rejected in every id and title (issue 15)."""
    return any(unicodedata.category(c) == "Cc" for c in text)


def _bad_user(user_id: str) -> bool:
    return not user_id.strip() or len(user_id) > MAX_ID or _has_cc(user_id)


def _bad_ids(ids: list[str], limit: int) -> bool:
    return len(ids) > limit or any(not i or len(i) > MAX_ID or _has_cc(i) for i in ids)


def _bad_vector(values: list[float]) -> bool:
    vec = np.asarray(values, dtype=np.float32)
    if len(values) != DIM or not np.isfinite(vec).all():
        return True
    with np.errstate(over="ignore"):  # finite values whose norm overflows float32 (3e38)
        return not np.isfinite(np.dot(vec, vec))


def _first(*checks: tuple[str, bool]) -> str | None:
    """The first field whose check failed, or None."""
    return next((name for name, bad in checks if bad), None)


def _verdict(method: Any, request: Any, expected: str | None) -> None:
    """Call `method`; OK when `expected` is None, else INVALID_ARGUMENT naming `expected`."""
    try:
        method(request, timeout=30)
        got = None
    except grpc.RpcError as exc:
        got = exc.details() or ""
        assert exc.code() == grpc.StatusCode.INVALID_ARGUMENT, (exc.code(), got)
        assert got and "Traceback" not in got
    event(f"rejected: {expected}")
    if expected is None:
        assert got is None, got
    else:
        assert got is not None, f"accepted, but {expected} is invalid"
        assert re.match(rf"{re.escape(expected)}(\[\d+\])?: ", got), (expected, got)


def _channel(world: World, server: str) -> grpc.Channel:
    return grpc.insecure_channel(f"127.0.0.1:{world.stack.ports[server]}")


@_PROPERTY
@given(
    user=_users,
    history=_id_lists(500),
    k=_ks,
    variant=st.sampled_from(["", "a", "b", "zz", "A"]),
)
def test_recommend_bad_input(
    module_world: World, user: str, history: list[str], k: int, variant: str
) -> None:
    expected = _first(
        ("user_id", _bad_user(user)),
        ("history_ids", _bad_ids(history, 500)),
        ("k", not 1 <= k <= 500),
        ("forced_variant", variant not in ("", "a", "b")),
    )
    _verdict(module_world.stub().Recommend, _req(user, history, k, variant), expected)


@_PROPERTY
@given(
    user=_users,
    history=_id_lists(500),
    recent=st.one_of(st.just([]), _id_lists(500)),
    version=st.sampled_from(["", "v1", "v2", "zz"]),
)
def test_encode_user_bad_input(
    module_world: World, user: str, history: list[str], recent: list[str], version: str
) -> None:
    expected = _first(
        ("user_id", _bad_user(user)),
        ("history_ids", _bad_ids(history, 500)),
        ("recent_clicks", _bad_ids(recent, 500)),
        ("history_ids+recent_clicks", len(history) + len(recent) > 500),
        ("model_version", version not in ("", "v1")),  # user-encoder/a serves v1
    )
    req = user_encoder_pb2.EncodeUserRequest(
        user_id=user, history_ids=history, recent_clicks=recent, model_version=version
    )
    with _channel(module_world, "user-encoder/a") as ch:
        _verdict(user_encoder_pb2_grpc.UserEncoderServiceStub(ch).EncodeUser, req, expected)


@_PROPERTY
@given(
    vector=_vectors,
    k=_ks,
    exclude=_id_lists(1000),
    categories=st.lists(st.from_regex(r"[a-z]{1,12}", fullmatch=True), max_size=5),
    published_after=st.one_of(st.none(), st.integers(-(2**63), 2**63 - 1)),
)
def test_retrieve_bad_input(
    module_world: World,
    vector: list[float],
    k: int,
    exclude: list[str],
    categories: list[str],
    published_after: int | None,
) -> None:
    # filters.categories: only valid names here; its rejections are in the table test below
    expected = _first(
        ("vector", _bad_vector(vector)),
        ("k", not 1 <= k <= 500),
        ("filters.exclude_ids", _bad_ids(exclude, 1000)),
    )
    filters = common_pb2.RetrievalFilters(
        exclude_ids=exclude, categories=categories, published_after=published_after
    )
    req = retrieval_pb2.RetrieveRequest(vector=vector, k=k, filters=filters)
    with _channel(module_world, "retrieval/a") as ch:
        _verdict(retrieval_pb2_grpc.RetrievalServiceStub(ch).Retrieve, req, expected)


@_PROPERTY
@given(
    user=_users,
    vector=_vectors,
    history=_id_lists(500),
    candidates=_id_lists(500),
    top_k=st.integers(min_value=0, max_value=2**32 - 1),
)
def test_rank_bad_input(
    module_world: World, user: str, vector: list[float], history: list[str], candidates: list[str], top_k: int
) -> None:
    expected = _first(
        ("user_id", _bad_user(user)),
        ("user_vector", _bad_vector(vector)),
        ("history_ids", _bad_ids(history, 500)),
        ("candidate_ids", _bad_ids(candidates, 500)),
    )
    req = ranking_pb2.RankRequest(
        user_id=user, user_vector=vector, history_ids=history, candidate_ids=candidates, top_k=top_k
    )
    with _channel(module_world, "ranker/a") as ch:
        _verdict(ranking_pb2_grpc.RankingServiceStub(ch).Rank, req, expected)


def _mostly(good: st.SearchStrategy[Any], bad: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """`good` about five times as often as `bad`: an upsert has eight fields checked in turn,
    and a field bad half the time would hide the checks after it."""
    # distinct copies: one_of drops repeats of the same strategy object
    return st.one_of(*(good.map(_same) for _ in range(5)), bad)


def _same(value: Any) -> Any:
    return value


_clean = st.characters(exclude_categories=["Cc", "Cs"])  # any character but a control one
_spliced = st.tuples(
    st.text(_clean, max_size=5), st.characters(categories=["Cc"]), st.text(_clean, max_size=5)
).map("".join)


def _keys(max_size: int, *bad: str, prefix: str = "") -> st.SearchStrategy[str]:
    """Id-like text after `prefix`, mostly without control characters; else with one spliced
    in, or one of the `bad` values as given."""
    clean = st.text(_clean, max_size=max_size).map(lambda t: prefix + t)
    return _mostly(clean, st.one_of(_spliced.map(lambda t: prefix + t), st.sampled_from(bad)))


_entities = st.one_of(
    st.lists(
        st.builds(
            news_pb2.NewsEntity,
            wikidata_id=_keys(8, "", " \t", "Q1\x00", "Q" * (MAX_ID + 1), prefix="Q"),
            label=_mostly(st.text(max_size=10), st.just("l" * (MAX_ID + 1))),
            confidence=st.floats(0, 1),
        ),
        max_size=3,
    ),
    # around the count limit
    st.integers(MAX_ENTITIES - 1, MAX_ENTITIES + 1).map(
        lambda n: [news_pb2.NewsEntity(wikidata_id=f"Q{i}") for i in range(n)]
    ),
)
YEAR_3000 = 32_503_680_000  # unix seconds of 3000-01-01: published_at must be in [0, YEAR_3000)


def _bad_key(value: str, required: bool = True) -> bool:
    """An id-like string Milvus stores or the model looks up: non-blank (when required),
    at most 256 UTF-8 bytes, no control characters."""
    blank = required and not value.strip()
    return blank or len(value.encode()) > MAX_ID or any(unicodedata.category(c) == "Cc" for c in value)


def _bad_entity(i: int, e: news_pb2.NewsEntity) -> Iterator[tuple[str, bool]]:
    yield f"entities[{i}].wikidata_id", _bad_key(e.wikidata_id)
    yield f"entities[{i}].label", len(e.label) > MAX_ID or _has_cc(e.label)


@settings(_PROPERTY, max_examples=80)
@given(
    # valid ids are prefixed, so an accepted upsert never overwrites an article of the model
    news_id=_keys(40, "", "  ", "x" * (MAX_ID + 1), "HYP-\x00", "HYP-" + "é" * 127, prefix="HYP-"),
    title=_mostly(st.text(min_size=1, max_size=30), st.sampled_from(["", " \n", "t" * 20_001])),
    abstract=_mostly(st.text(max_size=30), st.just("a" * 20_001)),
    category=_keys(20, "", " ", "c" * (MAX_ID + 1), "é" * 129, prefix="c"),
    subcategory=_keys(20, "s" * (MAX_ID + 1), "é" * 129),
    entities=_entities,
    published_at=_mostly(
        st.one_of(st.none(), st.integers(0, 2**33)),
        st.one_of(st.integers(-(2**63), 2**63 - 1), st.sampled_from([-1, YEAR_3000])),
    ),
)
def test_upsert_news_bad_input(
    module_world: World,
    news_id: str,
    title: str,
    abstract: str,
    category: str,
    subcategory: str,
    entities: list[news_pb2.NewsEntity],
    published_at: int | None,
) -> None:
    expected = _first(
        ("news_id", _bad_key(news_id) or "'" in news_id),
        ("title", not title.strip() or len(title) > 20_000 or _has_cc(title)),
        ("abstract", len(abstract) > 20_000 or _has_cc(abstract)),
        ("category", _bad_key(category)),
        ("subcategory", _bad_key(subcategory, required=False)),
        ("published_at", published_at is not None and not 0 <= published_at < YEAR_3000),
        ("entities", len(entities) > MAX_ENTITIES),
        *(check for i, e in enumerate(entities) for check in _bad_entity(i, e)),
    )
    req = news_pb2.UpsertNewsRequest(
        news_id=news_id,
        title=title,
        abstract=abstract,
        category=category,
        subcategory=subcategory,
        entities=entities,
        published_at=published_at,
    )
    with _channel(module_world, "retrieval/a") as ch:
        _verdict(news_pb2_grpc.NewsServiceStub(ch).UpsertNews, req, expected)


# request type -> (server in the stack, stub, method): where each request goes
_RPCS: dict[type, tuple[str, Any, str]] = {
    user_encoder_pb2.EncodeUserRequest: (
        "user-encoder/a",
        user_encoder_pb2_grpc.UserEncoderServiceStub,
        "EncodeUser",
    ),
    retrieval_pb2.RetrieveRequest: ("retrieval/a", retrieval_pb2_grpc.RetrievalServiceStub, "Retrieve"),
    ranking_pb2.RankRequest: ("ranker/a", ranking_pb2_grpc.RankingServiceStub, "Rank"),
    news_pb2.UpsertNewsRequest: ("retrieval/a", news_pb2_grpc.NewsServiceStub, "UpsertNews"),
    recommend_pb2.RecommendRequest: ("gateway", recommend_pb2_grpc.RecommendServiceStub, "Recommend"),
}


def test_invalid_input_is_rejected_naming_the_field(module_world: World) -> None:
    """Each listed misuse of each RPC is INVALID_ARGUMENT, and the message says which field."""
    nan = [float("nan")] + [0.1] * (DIM - 1)
    many = [f"N{i}" for i in range(501)]
    ue = user_encoder_pb2.EncodeUserRequest
    rt, rk, up = retrieval_pb2.RetrieveRequest, ranking_pb2.RankRequest, news_pb2.UpsertNewsRequest
    ok_news = {"news_id": "NBAD", "title": "t", "category": "c"}
    assert module_world.variants["a"].model.dim == DIM
    cases: list[tuple[Any, str]] = [
        (ue(user_id=""), "user_id: must not be empty"),
        (ue(user_id="u", history_ids=many), "history_ids: at most 500 ids, got 501"),
        (ue(user_id="u", recent_clicks=["N1", ""]), "recent_clicks[1]: news ids"),
        (
            ue(user_id="u", history_ids=many[:300], recent_clicks=many[:300]),
            "history_ids+recent_clicks: at most 500 ids together, got 600",
        ),
        (ue(user_id="u", model_version="v2"), "model_version: this server serves 'v1'"),
        (rt(vector=[0.1] * (DIM - 1), k=5), f"vector: expected {DIM} floats"),
        (rt(vector=nan, k=5), "vector: contains NaN"),
        (rt(vector=[0.1] * DIM, k=0), "k: must be between 1 and 500, got 0"),
        (rt(vector=[0.1] * DIM, k=501), "k: must be between 1 and 500, got 501"),
        (
            rt(vector=[0.1] * DIM, k=5, filters=common_pb2.RetrievalFilters(exclude_ids=many * 2)),
            "filters.exclude_ids: at most 1000 ids",
        ),
        (
            rt(vector=[0.1] * DIM, k=5, filters=common_pb2.RetrievalFilters(categories=["news"] * 101)),
            "filters.categories: at most",
        ),
        (rk(user_id=" ", user_vector=[0.1] * DIM), "user_id: must not be empty"),
        (rk(user_id="u", user_vector=[0.1] * 3), f"user_vector: expected {DIM} floats"),
        (rk(user_id="u", user_vector=nan), "user_vector: contains NaN"),
        (rk(user_id="u", user_vector=[0.1] * DIM, history_ids=many), "history_ids: at most 500"),
        (
            rk(user_id="u", user_vector=[0.1] * DIM, candidate_ids=many),
            "candidate_ids: at most 500",
        ),
        (up(**(ok_news | {"news_id": " "})), "news_id: must be 1..256"),
        (up(**(ok_news | {"title": " "})), "title: must not be empty"),
        (up(**(ok_news | {"category": ""})), "category: must not be empty"),
        (up(**(ok_news | {"title": "t" * 20_001})), "title: at most 20000 characters"),
        (up(**(ok_news | {"abstract": "a" * 20_001})), "abstract: at most 20000 characters"),
        (
            up(
                **ok_news,
                entities=[news_pb2.NewsEntity(wikidata_id="Q1"), news_pb2.NewsEntity(wikidata_id=" ")],
            ),
            "entities[1].wikidata_id: must not be empty",
        ),
        (up(**(ok_news | {"news_id": "N\x00BAD"})), "news_id: control character U+0000"),
        (up(**(ok_news | {"news_id": "N'BAD"})), "news_id: must not contain '"),
        (up(**(ok_news | {"news_id": "é" * 129})), "news_id: at most 256 bytes of UTF-8, got 258"),
        (up(**(ok_news | {"category": "c" * 257})), "category: at most 256 bytes of UTF-8, got 257"),
        (up(**(ok_news | {"category": "news\tx"})), "category: control character U+0009"),
        (up(**(ok_news | {"subcategory": "é" * 129})), "subcategory: at most 256 bytes of UTF-8"),
        (up(**(ok_news | {"subcategory": "\x85"})), "subcategory: control character U+0085"),
        (up(**ok_news, published_at=2**62), "published_at: must be between 0 and"),
        (up(**ok_news, published_at=-(2**62)), "published_at: must be between 0 and"),
        (up(**ok_news, published_at=YEAR_3000), "published_at: must be between 0 and"),
        (
            up(**ok_news, entities=[news_pb2.NewsEntity(wikidata_id="Q1")] * 201),
            "entities: at most 200 entities, got 201",
        ),
        (
            up(**ok_news, entities=[news_pb2.NewsEntity(wikidata_id="Q\x00")]),
            "entities[0].wikidata_id: control character U+0000",
        ),
        (
            up(
                **ok_news,
                entities=[news_pb2.NewsEntity(wikidata_id="Q1")] * 3
                + [news_pb2.NewsEntity(wikidata_id="Q1", label="l" * 257)],
            ),
            "entities[3].label: at most 256 characters",
        ),
        (_req("", ["N1"]), "user_id: must not be empty"),
        (_req("u", many), "history_ids: at most 500 ids, got 501"),
        (_req("u", [], k=0), "k: must be between 1 and 500, got 0"),
        (_req("u", [], variant="zz"), "forced_variant: unknown variant 'zz' (configured: a, b)"),
    ]
    deps = module_world.variants["a"]
    milvus = getattr(deps.index, "source", deps.index)  # behind the mirror, if any
    rows = milvus.count(deps.alias)
    for req, message in cases:
        server, stub, method = _RPCS[type(req)]
        with _channel(module_world, server) as ch, pytest.raises(grpc.RpcError) as err:
            getattr(stub(ch), method)(req, timeout=10)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, (message, err.value.code())
        assert (err.value.details() or "").startswith(message), (message, err.value.details())
    # a rejected upsert wrote nothing, anywhere
    assert milvus.count(deps.alias) == rows
    assert deps.model.news_metadata("NBAD") is None


def test_every_server_lists_its_services_by_reflection(module_world: World) -> None:
    """grpcurl-style discovery works on each server: its own newsrec.v1 services, health and
    reflection, and the descriptors of their methods."""
    from google.protobuf.descriptor_pool import DescriptorPool
    from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
        ProtoReflectionDescriptorDatabase,
    )

    expected = {
        "gateway": {"newsrec.v1.RecommendService"},
        "user-encoder/a": {"newsrec.v1.UserEncoderService"},
        "retrieval/a": {"newsrec.v1.RetrievalService", "newsrec.v1.NewsService"},
        "ranker/b": {"newsrec.v1.RankingService"},
    }
    common = {"grpc.health.v1.Health", "grpc.reflection.v1alpha.ServerReflection"}
    for server, own in expected.items():
        with _channel(module_world, server) as ch:
            database = ProtoReflectionDescriptorDatabase(ch)
            assert set(database.get_services()) == own | common, server
            pool = DescriptorPool(database)
            for name in own:
                methods = {m.name: m for m in pool.FindServiceByName(name).methods}
                assert methods and all(
                    m.input_type.full_name.startswith("newsrec.v1.") for m in methods.values()
                )
    with _channel(module_world, "gateway") as ch:
        service = DescriptorPool(ProtoReflectionDescriptorDatabase(ch)).FindServiceByName(
            "newsrec.v1.RecommendService"
        )
        method = service.methods_by_name["Recommend"]
        assert method.input_type.full_name == "newsrec.v1.RecommendRequest"
        assert {f.name for f in method.input_type.fields} == {"user_id", "history_ids", "k", "forced_variant"}


def _unlabelled_by_variant(port: int | None) -> tuple[set[str], list[str]]:
    """(families with labelled samples, samples whose labels lack `variant`) of an endpoint."""
    labelled, missing = set(), []
    for family in _metric_families(port).values():
        for sample in family.samples:
            if sample.labels:
                labelled.add(family.name)
                if "variant" not in sample.labels:
                    missing.append(f"{sample.name}{sample.labels}")
    return labelled, missing


def test_every_labelled_metric_has_a_variant(module_world: World, shared: dict[str, Any]) -> None:
    """Every labelled family a serving process exports carries `variant`: the stack's one
    endpoint, and each service on its own metrics port as `serve --service NAME` runs it."""
    from services import ranker, retrieval, user_encoder
    from services.cache import LruVectorCache
    from services.run import create_one

    user, history = module_world.users[5]
    module_world.stub().Recommend(_req(user, [*history, "N-unknown"]), timeout=5)
    labelled, missing = _unlabelled_by_variant(module_world.stack.metrics_port)
    assert not missing, missing
    assert {"newsrec_gateway_request_seconds", "newsrec_ranker_candidates"} <= labelled

    a: VariantDeps = shared["a"]
    cfg = ServeConfig.model_validate({"grpc_port": 0, "metrics_port": 0, "host": "127.0.0.1", "variant": "a"})
    servers = {
        "user-encoder": user_encoder.create_server(
            cfg, user_encoder.UserEncoderDeps(a.model, LruVectorCache(10, 60))
        ),
        "retrieval": retrieval.create_server(
            cfg, retrieval.RetrievalDeps(a.index, a.alias, a.model, a.catalog, a.provider)
        ),
        "ranker": ranker.create_server(cfg, ranker.RankerDeps(a.model)),
    }
    backends = {f"{k.replace('-', '_')}": f"127.0.0.1:{port}" for k, (_, port) in servers.items()}
    down = f"127.0.0.1:{free_port()}"
    gw_cfg = cfg.model_copy(
        update={
            "service": "gateway",
            "gateway": ServeConfig.model_validate(
                {
                    "gateway": {
                        "timeouts": {"encode_user": 5, "retrieve": 5, "rank": 5},
                        "variants": [
                            {"name": "a", "weight": 1, **backends},
                            {
                                "name": "down",
                                "weight": 0,
                                "user_encoder": down,
                                "retrieval": down,
                                "ranker": down,
                            },
                        ],
                    }
                }
            ).gateway,
        }
    )
    servers["gateway"] = create_one(gw_cfg)
    try:
        for server, _ in servers.values():
            assert server.ready.wait(30)
        with grpc.insecure_channel(f"127.0.0.1:{servers['gateway'][1]}") as ch:
            stub = recommend_pb2_grpc.RecommendServiceStub(ch)
            assert not stub.Recommend(_req(user, [*history, "N-unknown"], variant="a"), timeout=10).degraded
            assert stub.Recommend(_req(user, history, variant="down"), timeout=10).degraded
        with grpc.insecure_channel(f"127.0.0.1:{servers['retrieval'][1]}") as ch:
            news_pb2_grpc.NewsServiceStub(ch).UpsertNews(
                news_pb2.UpsertNewsRequest(news_id="NMETRICS1", title="Metrics", category="news"), timeout=30
            )
        # what each port must show with samples, so the walk below is not vacuous
        expected = {
            "gateway": [
                "request_seconds",
                "stage_seconds",
                "degraded",
                "variant_requests",
                "unknown_history",
            ],
            "user_encoder": ["request_seconds", "cache_requests", "cache_hit_ratio", "compute_seconds"],
            "retrieval": ["request_seconds", "index_size", "search_seconds"],
            "ranker": ["request_seconds", "candidates"],
        }
        for name, (server, _) in servers.items():
            labelled, missing = _unlabelled_by_variant(server.metrics_port)
            assert not missing, (name, missing)
            service = name.replace("-", "_")
            want = {f"newsrec_{service}_{family}" for family in expected[service]}
            if name == "retrieval":
                want |= {"newsrec_news_upserts", "newsrec_news_request_seconds"}
            assert want <= labelled, (name, want - labelled)
    finally:
        for server, _ in servers.values():
            server.stop(0).wait()


def test_redis_down_computes_without_cache(world: World) -> None:
    stub = world.stub()
    user, history = world.users[2]
    assert not stub.Recommend(_req(user, history, variant="a"), timeout=5).degraded
    world.redis.kill()
    port = world.stack.metrics_port
    before = _sample(port, "newsrec_gateway_degraded_total", reason="cache_unavailable", variant="a")
    resp = stub.Recommend(_req(user, history, variant="a"), timeout=5)
    assert resp.degraded and list(resp.degraded_reasons) == ["cache_unavailable"]
    assert len(resp.items) == 10 and not resp.cache_hit
    assert (
        _sample(port, "newsrec_gateway_degraded_total", reason="cache_unavailable", variant="a") == before + 1
    )


def test_retrieval_down_gives_popular_fresh_fallback(world: World) -> None:
    stub = world.stub()
    user, history = world.users[3]
    world.stack.servers["retrieval/a"].stop(0).wait()
    resp = stub.Recommend(_req(user, history, variant="a"), timeout=5)
    assert resp.degraded and "retrieval_unavailable" in resp.degraded_reasons
    assert len(resp.items) == 10 and all(i.title for i in resp.items)
    assert not set(history) & {i.news_id for i in resp.items}
    port = world.stack.metrics_port
    assert _sample(port, "newsrec_gateway_degraded_total", reason="retrieval_unavailable", variant="a") == 1
    assert _sample(port, "newsrec_gateway_degraded_total", reason="retrieval_unavailable", variant="b") == 0


def test_ranker_down_gives_retrieval_order(world: World) -> None:
    stub = world.stub()
    user, history = world.users[4]
    world.stack.servers["ranker/b"].stop(0).wait()
    resp = stub.Recommend(_req(user, history, variant="b"), timeout=5)
    assert resp.degraded and list(resp.degraded_reasons) == ["ranker_unavailable"]
    retrieved, _ = stage_answers(world.stack, "b", user, history)
    assert [(i.news_id, i.score) for i in resp.items] == retrieved[:10]
    port = world.stack.metrics_port
    assert _sample(port, "newsrec_gateway_degraded_total", reason="ranker_unavailable", variant="b") == 1


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
