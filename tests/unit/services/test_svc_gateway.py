"""Gateway logic over real loopback gRPC, with the deterministic fake model and numpy index."""

from __future__ import annotations

import time
from typing import Any

import grpc
import pytest
from stack_probe import stage_answers

from services.ab import assign
from services.generated.newsrec.v1 import (
    news_pb2,
    news_pb2_grpc,
    recommend_pb2,
    recommend_pb2_grpc,
    retrieval_pb2,
    retrieval_pb2_grpc,
)
from services.stack import Stack


def _recommend(channel: grpc.Channel, **kw: Any) -> recommend_pb2.RecommendResponse:
    stub = recommend_pb2_grpc.RecommendServiceStub(channel)
    req = recommend_pb2.RecommendRequest(**{"user_id": "U1", "history_ids": ["N1", "N2"], "k": 10, **kw})
    return stub.Recommend(req, timeout=5)


def test_recommend_full_path(fake_stack: Stack, gateway_channel: grpc.Channel) -> None:
    resp = _recommend(gateway_channel, forced_variant="a", history_ids=["N1", "N2", "nope"])
    assert len(resp.items) == 10
    assert resp.variant == "a" and resp.model_version == "v1"
    assert not resp.degraded, resp.degraded_reasons
    assert resp.unknown_history_count == 1
    ids = [item.news_id for item in resp.items]
    assert not {"N1", "N2"} & set(ids), "history must be excluded"
    assert all(item.title == f"Title of {item.news_id}" for item in resp.items)
    scores = [item.score for item in resp.items]
    assert scores == sorted(scores, reverse=True)
    assert {s.stage for s in resp.stage_latencies} == {"encode_user", "retrieve", "rank", "total"}
    assert resp.cache_hit is False
    again = _recommend(gateway_channel, forced_variant="a", history_ids=["N1", "N2", "nope"])
    assert again.cache_hit is True and [i.news_id for i in again.items] == ids
    # the answer is the ranker's order of the retrieved candidates, not retrieval's order
    retrieved, ranked = stage_answers(fake_stack, "a", "U1", ["N1", "N2", "nope"], 10)
    assert [(i.news_id, i.score) for i in resp.items] == ranked
    assert ids != [news_id for news_id, _ in retrieved[:10]]


def test_hash_assignment_matches_config(fake_stack: Stack, gateway_channel: grpc.Channel) -> None:
    from services.config import VariantConfig

    # the expectation below is computed from the split the gateway really serves
    served = fake_stack.servers["gateway"].bindings[0].servicer.config
    assert [(v.name, v.weight) for v in served.variants] == [("a", 50), ("b", 50)]
    assert served.salt == "newsrec-ab-v1"
    variants = [
        VariantConfig(name=n, weight=50, user_encoder="x", retrieval="x", ranker="x") for n in ("a", "b")
    ]
    seen = set()
    for i in range(20):
        resp = _recommend(gateway_channel, user_id=f"U{i}", k=3)
        assert resp.variant == assign(variants, "newsrec-ab-v1", f"U{i}").name
        assert resp.model_version == {"a": "v1", "b": "v2"}[resp.variant]
        seen.add(resp.variant)
    assert seen == {"a", "b"}


def test_ranker_down_degrades_to_retrieval_order(fake_stack: Stack, gateway_channel: grpc.Channel) -> None:
    fake_stack.servers["ranker/a"].stop(0).wait()
    resp = _recommend(gateway_channel, forced_variant="a")
    assert resp.degraded and list(resp.degraded_reasons) == ["ranker_unavailable"]
    retrieved, _ = stage_answers(fake_stack, "a", "U1", ["N1", "N2"], 10, rank=False)
    assert [(i.news_id, i.score) for i in resp.items] == retrieved[:10]
    assert all(item.title == f"Title of {item.news_id}" for item in resp.items)
    assert _degraded(fake_stack, "a", "ranker_unavailable") == 1


def _degraded(stack: Stack, variant: str, reason: str) -> float:
    labels = {"variant": variant, "reason": reason}
    return stack.registry.get_sample_value("newsrec_gateway_degraded_total", labels) or 0.0


def test_retrieve_columns_line_up(fake_stack: Stack) -> None:
    with grpc.insecure_channel(f"127.0.0.1:{fake_stack.ports['retrieval/a']}") as ch:
        got = retrieval_pb2_grpc.RetrievalServiceStub(ch).Retrieve(
            retrieval_pb2.RetrieveRequest(vector=[0.25] * 16, k=20), timeout=5
        )
    columns = (got.news_ids, got.scores, got.titles, got.categories, got.subcategories, got.published_at)
    assert [len(c) for c in columns] == [20] * 6
    assert list(got.scores) == sorted(got.scores, reverse=True)
    assert list(got.titles) == [f"Title of {n}" for n in got.news_ids]


def test_misaligned_retrieve_columns_degrade_to_fallback(
    fake_stack: Stack, gateway_channel: grpc.Channel
) -> None:
    # a retrieval that breaks the contract (columns of different lengths) must not crash
    # the gateway or pair a title with the wrong article
    deps = fake_stack.servers["retrieval/a"].bindings[0].servicer.deps
    deps.catalog.titles = lambda ids: []
    resp = _recommend(gateway_channel, forced_variant="a")
    assert resp.degraded and list(resp.degraded_reasons) == ["retrieval_unavailable"]
    assert len(resp.items) == 10 and all(item.title for item in resp.items)
    assert _degraded(fake_stack, "a", "retrieval_unavailable") == 1


def test_retrieval_down_gives_popular_fallback(fake_stack: Stack, gateway_channel: grpc.Channel) -> None:
    fake_stack.servers["retrieval/b"].stop(0).wait()
    resp = _recommend(gateway_channel, forced_variant="b", history_ids=["N0"])
    assert resp.degraded and "retrieval_unavailable" in resp.degraded_reasons
    assert _degraded(fake_stack, "b", "retrieval_unavailable") == 1
    assert _degraded(fake_stack, "a", "retrieval_unavailable") == 0
    assert len(resp.items) == 10 and "N0" not in [i.news_id for i in resp.items]
    assert all(item.title for item in resp.items)


def test_bad_input_is_invalid_argument(gateway_channel: grpc.Channel) -> None:
    cases: list[tuple[dict[str, Any], str]] = [
        ({"k": 0}, "k: must be between 1 and 500"),
        ({"k": 501}, "k:"),
        ({"user_id": ""}, "user_id"),
        ({"history_ids": [f"N{i}" for i in range(501)]}, "history_ids: at most 500"),
        ({"forced_variant": "zzz"}, "unknown variant 'zzz'"),
    ]
    for kw, text in cases:
        with pytest.raises(grpc.RpcError) as err:
            _recommend(gateway_channel, **kw)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, kw
        assert text in (err.value.details() or ""), (kw, err.value.details())


def test_upsert_then_retrieve_finds_article(fake_stack: Stack) -> None:
    with grpc.insecure_channel(f"127.0.0.1:{fake_stack.ports['retrieval/a']}") as ch:
        news = news_pb2_grpc.NewsServiceStub(ch)
        resp = news.UpsertNews(
            news_pb2.UpsertNewsRequest(
                news_id="COLD1", title="Brand new story", abstract="x", category="sports"
            ),
            timeout=5,
        )
        assert resp.model_version == "v1" and resp.dim == 16
        # query with the article's own direction: it must come back first
        import numpy as np
        from svc_fakes import HashProvider, _unit

        vec = _unit(np.resize(HashProvider().embed(["Title: Brand new story\nAbstract: x"]).vectors[0], 16))
        got = retrieval_pb2_grpc.RetrievalServiceStub(ch).Retrieve(
            retrieval_pb2.RetrieveRequest(vector=vec.tolist(), k=3), timeout=5
        )
        assert got.news_ids[0] == "COLD1"
        assert got.titles[0] == "Brand new story"
        with pytest.raises(grpc.RpcError) as err:
            retrieval_pb2_grpc.RetrievalServiceStub(ch).Retrieve(
                retrieval_pb2.RetrieveRequest(vector=[float("nan")] * 16, k=3), timeout=5
            )
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "NaN" in (err.value.details() or "")


def test_in_process_stack_same_answers_and_degrades() -> None:
    from svc_fakes import fake_variant

    from services.config import ServeConfig
    from services.stack import start_stack

    cfg = ServeConfig.model_validate({"grpc_port": 0, "metrics_port": None, "host": "127.0.0.1"})
    stack = start_stack(cfg, {"a": fake_variant("v1", 0)}, in_process=True)
    try:
        stack.wait_ready(30)
        with grpc.insecure_channel(f"127.0.0.1:{stack.ports['gateway']}") as ch:
            resp = _recommend(ch)
            assert resp.variant == "a" and len(resp.items) == 10 and not resp.degraded
            bad = _recommend(ch, k=3, history_ids=["N1"], user_id="U9")
            assert len(bad.items) == 3
            # a servicer that fails maps to the same degraded path as a dead server
            stack.servers["ranker/a"].bindings[0].servicer.deps = None
            resp = _recommend(ch)
            assert resp.degraded and list(resp.degraded_reasons) == ["ranker_unavailable"]
            assert _degraded(stack, "a", "ranker_unavailable") == 1
    finally:
        stack.stop(0)


def test_stage_timeouts_bounded_by_client_deadline(fake_stack: Stack, gateway_channel: grpc.Channel) -> None:
    # stage timeouts in this stack are 5 s; the client's 1 s deadline must bound them, so the
    # answer is a fallback, not DEADLINE_EXCEEDED
    model = fake_stack.servers["user-encoder/a"].bindings[0].servicer.deps.model
    model.encode_delay = 3.0
    stub = recommend_pb2_grpc.RecommendServiceStub(gateway_channel)
    req = recommend_pb2.RecommendRequest(user_id="U-slow", history_ids=["N5"], k=5, forced_variant="a")
    t0 = time.perf_counter()
    resp = stub.Recommend(req, timeout=1.0)
    assert time.perf_counter() - t0 < 1.0
    assert resp.degraded and list(resp.degraded_reasons) == ["user_encoder_unavailable"]
    assert len(resp.items) == 5  # the popular-and-fresh list
    assert _degraded(fake_stack, "a", "user_encoder_unavailable") == 1


def _pinned_stack(pinned: str, lookaside: bool = True) -> Stack:
    from svc_fakes import fake_variant

    from services.config import ServeConfig
    from services.stack import start_stack

    cfg = ServeConfig.model_validate(
        {
            "grpc_port": 0,
            "metrics_port": None,
            "host": "127.0.0.1",
            "gateway": {
                "in_process": False,
                "user_cache_lookaside": lookaside,
                "timeouts": {"encode_user": 5, "retrieve": 5, "rank": 5},
                "variants": [
                    {
                        "name": "a",
                        "model_version": pinned,
                        "user_encoder": "-",
                        "retrieval": "-",
                        "ranker": "-",
                    }
                ],
            },
        }
    )
    stack = start_stack(cfg, {"a": fake_variant("v1", 0)})
    stack.wait_ready(30)
    return stack


def _encoder_calls(stack: Stack) -> float:
    labels = {"method": "EncodeUser", "code": "OK", "variant": "a"}
    return stack.registry.get_sample_value("newsrec_user_encoder_request_seconds_count", labels) or 0.0


def _gateway_cache(stack: Stack, result: str) -> float:
    labels = {"variant": "a", "result": result}
    return stack.registry.get_sample_value("newsrec_gateway_user_cache_total", labels) or 0.0


@pytest.mark.parametrize(
    ("pinned", "lookaside", "skips_encoder"), [("v1", True, True), ("", True, False), ("v1", False, False)]
)
def test_gateway_reads_the_encoder_cache_only_for_pinned_versions(
    pinned: str, lookaside: bool, skips_encoder: bool
) -> None:
    stack = _pinned_stack(pinned, lookaside)
    try:
        with grpc.insecure_channel(f"127.0.0.1:{stack.ports['gateway']}") as ch:
            first = _recommend(ch, history_ids=["N1", "N2", "nope"])
            calls = _encoder_calls(stack)
            again = _recommend(ch, history_ids=["N1", "N2", "nope"])
        assert calls == 1 and not first.cache_hit and again.cache_hit
        assert _encoder_calls(stack) == (1 if skips_encoder else 2)
        assert _gateway_cache(stack, "hit") == (1 if skips_encoder else 0)
        # the same answer either way, with the encoder's unknown-history count and version
        assert [i.news_id for i in again.items] == [i.news_id for i in first.items]
        assert again.unknown_history_count == first.unknown_history_count == 1
        assert again.model_version == first.model_version == "v1" and not again.degraded
    finally:
        stack.stop(0)


def test_gateway_cache_failure_falls_back_to_the_encoder() -> None:
    stack = _pinned_stack("v1")
    try:
        backend = stack.servers["gateway"].bindings[0].servicer.deps.backends["a"]

        class Down:
            def get(self, key: str) -> None:
                from newsrec.errors import Unavailable

                raise Unavailable("redis cache unavailable: test")

        object.__setattr__(backend.user_cache, "cache", Down())
        with grpc.insecure_channel(f"127.0.0.1:{stack.ports['gateway']}") as ch:
            _recommend(ch)
            resp = _recommend(ch)
        # the encoder's own cache still works: a normal, cached, undegraded answer
        assert resp.cache_hit and not resp.degraded and len(resp.items) == 10
        assert _encoder_calls(stack) == 2 and _gateway_cache(stack, "error") == 2
    finally:
        stack.stop(0)


def test_a_stage_that_rejects_the_request_is_reported_as_rejected() -> None:
    """Issue 15 defect 1: a version pinned wrongly made the encoder answer INVALID_ARGUMENT,
    reported as `user_encoder_unavailable`; a refusal is a misconfiguration, not an outage."""
    stack = _pinned_stack("v-not-served")
    try:
        with grpc.insecure_channel(f"127.0.0.1:{stack.ports['gateway']}") as ch:
            resp = _recommend(ch)
        assert resp.degraded and list(resp.degraded_reasons) == ["user_encoder_rejected"]
        assert len(resp.items) == 10  # still answered, from the fallback list
        labels = {"variant": "a", "reason": "user_encoder_rejected"}
        assert stack.registry.get_sample_value("newsrec_gateway_degraded_total", labels) == 1
    finally:
        stack.stop(0)
