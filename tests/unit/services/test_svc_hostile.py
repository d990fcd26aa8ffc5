"""Hostile input over real loopback gRPC (issue 15 defect 6): undecodable bytes, values
that overflow, control characters, duplicate candidates, a provider that refuses for good."""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator
from pathlib import Path

import grpc
import numpy as np
import pytest
from svc_fakes import fake_variant

from services import retrieval
from services.config import ServeConfig
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
from services.stack import Stack

METHODS = {
    "gateway": "/newsrec.v1.RecommendService/Recommend",
    "user-encoder/a": "/newsrec.v1.UserEncoderService/EncodeUser",
    "retrieval/a": "/newsrec.v1.RetrievalService/Retrieve",
    "ranker/a": "/newsrec.v1.RankingService/Rank",
}
# Field 1 of every request above is a string (user_id; RetrieveRequest: a packed float
# vector, so field 1 with a bad length): invalid UTF-8 and a truncated length-delimited field.
BAD_UTF8 = b"\x0a\x02\xff\xfe"
TRUNCATED = b"\x0a\x40abc"


def _raw(port: int, method: str, payload: bytes) -> grpc.RpcError:
    with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
        call = ch.unary_unary(method, request_serializer=None, response_deserializer=None)
        with pytest.raises(grpc.RpcError) as info:
            call(payload, timeout=5)
    return info.value


@pytest.mark.parametrize("server", sorted(METHODS))
@pytest.mark.parametrize("payload", [BAD_UTF8, TRUNCATED, b"\xff\xff\xff\xff"], ids=["utf8", "trunc", "junk"])
def test_undecodable_request_is_invalid_argument(fake_stack: Stack, server: str, payload: bytes) -> None:
    method = METHODS[server]
    if server == "retrieval/a" and payload == BAD_UTF8:
        payload = b"\x1a\x02\xff\xfe"  # field 3 (filters), a sub-message that does not parse
    err = _raw(fake_stack.ports[server], method, payload)
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, (err.code(), err.details())
    assert "request: not a valid" in (err.details() or "")
    with grpc.insecure_channel(f"127.0.0.1:{fake_stack.ports['gateway']}") as ch:  # still serving
        resp = recommend_pb2_grpc.RecommendServiceStub(ch).Recommend(
            recommend_pb2.RecommendRequest(user_id="U1", history_ids=["N1"], k=3), timeout=5
        )
    assert len(resp.items) == 3


def test_huge_finite_vector_is_rejected_not_answered_with_nan(fake_stack: Stack) -> None:
    with (
        grpc.insecure_channel(f"127.0.0.1:{fake_stack.ports['retrieval/a']}") as ch,
        pytest.raises(grpc.RpcError) as info,
    ):
        retrieval_pb2_grpc.RetrievalServiceStub(ch).Retrieve(
            retrieval_pb2.RetrieveRequest(vector=[3e38] * 16, k=5), timeout=5
        )
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "vector: values too large" in (info.value.details() or "")
    with (
        grpc.insecure_channel(f"127.0.0.1:{fake_stack.ports['ranker/a']}") as ch,
        pytest.raises(grpc.RpcError) as info,
    ):
        ranking_pb2_grpc.RankingServiceStub(ch).Rank(
            ranking_pb2.RankRequest(user_id="U", user_vector=[-3e38] * 16, candidate_ids=["N1"]),
            timeout=5,
        )
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "user_vector: values too large" in (info.value.details() or "")


def test_non_finite_scores_from_the_index_are_never_returned(fake_stack: Stack) -> None:
    servicer = fake_stack.servers["retrieval/a"].bindings[0].servicer
    index = servicer.deps.index
    rows = index._rows[index.resolve_alias(servicer.deps.alias)]
    first = next(iter(rows.values()))
    first.vector[:] = np.nan  # a corrupt row
    with (
        grpc.insecure_channel(f"127.0.0.1:{fake_stack.ports['retrieval/a']}") as ch,
        pytest.raises(grpc.RpcError) as info,
    ):
        retrieval_pb2_grpc.RetrievalServiceStub(ch).Retrieve(
            retrieval_pb2.RetrieveRequest(vector=[0.25] * 16, k=500), timeout=5
        )
    assert info.value.code() == grpc.StatusCode.INTERNAL
    assert "non-finite scores" in (info.value.details() or "")


@pytest.mark.parametrize(
    ("request_kw", "field"),
    [
        ({"user_id": "U\x001"}, "user_id"),
        ({"history_ids": ["N1", "N\x002"]}, "history_ids[1]"),
        ({"history_ids": ["N1\x1b[31m"]}, "history_ids[0]"),
    ],
)
def test_control_characters_in_ids_are_rejected_with_the_field(
    gateway_channel: grpc.Channel, request_kw: dict[str, object], field: str
) -> None:
    req = recommend_pb2.RecommendRequest(**{"user_id": "U1", "history_ids": ["N1"], "k": 3, **request_kw})
    with pytest.raises(grpc.RpcError) as info:
        recommend_pb2_grpc.RecommendServiceStub(gateway_channel).Recommend(req, timeout=5)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert (info.value.details() or "").startswith(f"{field}: control character U+00")


@pytest.mark.parametrize(
    ("request_kw", "field"),
    [
        ({"title": "Breaking\x00news"}, "title"),
        ({"abstract": "line one\nline two"}, "abstract"),
        ({"news_id": "N\tX"}, "news_id"),
        ({"entities": [news_pb2.NewsEntity(wikidata_id="Q1", label="a\x07b")]}, "entities[0].label"),
    ],
)
def test_control_characters_in_upserted_news_are_rejected(
    fake_stack: Stack, request_kw: dict[str, object], field: str
) -> None:
    base = {"news_id": "NEW1", "title": "A title", "category": "sports"}
    with (
        grpc.insecure_channel(f"127.0.0.1:{fake_stack.ports['retrieval/a']}") as ch,
        pytest.raises(grpc.RpcError) as info,
    ):
        news_pb2_grpc.NewsServiceStub(ch).UpsertNews(
            news_pb2.UpsertNewsRequest(**{**base, **request_kw}), timeout=5
        )
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert (info.value.details() or "").startswith(f"{field}: control character")


def test_rank_deduplicates_candidates_keeping_the_first(fake_stack: Stack) -> None:
    ids = ["N5"] * 50 + ["N7", "N5", "N9"]
    with grpc.insecure_channel(f"127.0.0.1:{fake_stack.ports['ranker/a']}") as ch:
        resp = ranking_pb2_grpc.RankingServiceStub(ch).Rank(
            ranking_pb2.RankRequest(user_id="U", user_vector=[0.25] * 16, candidate_ids=ids), timeout=5
        )
    assert sorted(c.news_id for c in resp.candidates) == ["N5", "N7", "N9"]


class _Refuses(http.server.BaseHTTPRequestHandler):
    """An OpenAI-compatible endpoint failing with `status` (401: a revoked key, echoed back;
    503: overloaded)."""

    status = 401

    def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
        key = self.headers.get("Authorization", "")
        body = json.dumps(
            {"error": {"message": f"Incorrect API key provided: {key}", "code": "invalid_api_key"}}
        )
        self.send_response(self.status)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body.encode())

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(params=[401, 503], ids=["401", "503"])
def refusing_endpoint(request: pytest.FixtureRequest) -> Iterator[str]:
    handler = type("Handler", (_Refuses,), {"status": request.param})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{httpd.server_port}/v1"
    _STATUS[url] = request.param
    yield url
    httpd.shutdown()
    httpd.server_close()


def refusing_endpoint_status(url: str) -> int:
    return _STATUS[url]


_STATUS: dict[str, int] = {}


def test_provider_errors_are_failed_precondition_or_unavailable_without_the_secret(
    refusing_endpoint: str, tmp_path: Path
) -> None:
    from newsrec.embed.config import ProviderConfig
    from newsrec.embed.providers import build_provider

    secret = "sk-test-0123456789abcdefSECRET"
    (tmp_path / "key").write_text(secret)
    provider = build_provider(
        ProviderConfig(
            provider="openai",
            model="m",
            base_url=refusing_endpoint,
            api_key_file=tmp_path / "key",
            max_retries=0,
        )
    )
    v = fake_variant()
    v.provider = provider
    cfg = ServeConfig.model_validate({"grpc_port": 0, "metrics_port": None, "host": "127.0.0.1"})
    server, port = retrieval.create_server(cfg, v.retrieval_deps())
    try:
        server.ready.wait(10)
        with grpc.insecure_channel(f"127.0.0.1:{port}") as ch, pytest.raises(grpc.RpcError) as info:
            news_pb2_grpc.NewsServiceStub(ch).UpsertNews(
                news_pb2.UpsertNewsRequest(news_id="NEW1", title="A title", category="sports"), timeout=10
            )
    finally:
        server.stop(0).wait()
    details = info.value.details() or ""
    if refusing_endpoint_status(refusing_endpoint) == 401:  # permanent: fix the configuration
        assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION, (info.value.code(), details)
        assert "HTTP 401" in details and "refused" in details
    else:  # transient: retry later
        assert info.value.code() == grpc.StatusCode.UNAVAILABLE, (info.value.code(), details)
        assert "HTTP 503" in details and "retry later" in details
    assert secret not in details and secret[:8] not in details and "Incorrect API key" not in details
