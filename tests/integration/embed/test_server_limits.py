"""The product embedding server against hostile and oversized requests, over real HTTP
(the `openai` client and raw http.client): no fault route, strict types, the model name
checked, bounded JSON, bounded work, and a small request never stuck behind a big one."""

from __future__ import annotations

import contextlib
import http.client
import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import openai
import pytest

from newsrec.embed.server import EmbeddingHTTPServer, ServerLimits, start_embedding_server

M = "text-embedding-3-small"


@pytest.fixture()
def product(local_provider: object) -> Iterator[tuple[EmbeddingHTTPServer, int]]:
    server, port = start_embedding_server(local_provider, model_name=M)  # type: ignore[arg-type]
    yield server, port
    server.stop()


def _client(port: int) -> openai.OpenAI:
    return openai.OpenAI(api_key="sk-x", base_url=f"http://127.0.0.1:{port}/v1", max_retries=0, timeout=120)


def _post(
    port: int, body: bytes | str, path: str = "/v1/embeddings", **headers: str
) -> tuple[int, Any, dict]:
    """Raw POST; returns (status, parsed JSON body, headers)."""
    data = body.encode() if isinstance(body, str) else body
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    try:
        conn.putrequest("POST", path)
        conn.putheader("Content-Type", "application/json")
        if "Content-Length" not in headers and "Transfer-Encoding" not in headers:
            conn.putheader("Content-Length", str(len(data)))
        for name, value in headers.items():
            conn.putheader(name, value)
        conn.endheaders()
        # the server may answer (413) before reading the whole body
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            conn.send(data)
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read()), dict(resp.getheaders())
    finally:
        conn.close()


def _texts(n: int, chars: int = 400) -> list[str]:
    return [f"Title: story {i}\nAbstract: " + ("word " * (chars // 5))[:chars] for i in range(n)]


def test_product_server_has_no_fault_route(product: tuple[EmbeddingHTTPServer, int]) -> None:
    _, port = product
    status, body, _ = _post(port, json.dumps({"rate_limit": 5}), "/admin/faults")
    assert status == 404 and body["error"]["code"] == "not_found"
    assert _client(port).embeddings.create(model=M, input="still fine").data  # no 429 armed


def test_deep_json_is_a_400_not_a_dropped_connection(product: tuple[EmbeddingHTTPServer, int]) -> None:
    _, port = product
    for depth in (50, 100_000):
        status, body, _ = _post(port, '{"input": ' + "[" * depth + "]" * depth + ', "model": "x"}')
        assert status == 400 and "nests deeper than 8" in body["error"]["message"], (depth, body)
    for raw, words in [
        ('{"input": "x", "model": NaN}', "strict JSON"),
        (b'{"input": "\xff", "model": "m"}', "not JSON"),
        ("[1, 2", "not JSON"),
    ]:
        status, body, _ = _post(port, raw)
        assert status == 400 and words in body["error"]["message"], (raw, body)
    assert _client(port).embeddings.create(model=M, input="after").data


def test_wrong_model_is_model_not_found(product: tuple[EmbeddingHTTPServer, int]) -> None:
    _, port = product
    with pytest.raises(openai.NotFoundError) as info:
        _client(port).embeddings.create(model="text-embedding-3-large", input="x")
    err = info.value.body
    assert isinstance(err, dict) and err["code"] == "model_not_found" and err["param"] == "model"
    assert M in err["message"]


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"dimensions": True}, "dimensions"),
        ({"dimensions": 3.0}, "dimensions"),
        ({"dimensions": 0}, "dimensions"),
        ({"encoding_format": 1}, "encoding_format"),
        ({"encoding_format": "int8"}, "encoding_format"),
        ({"input": [1, 2]}, "input"),
        ({"input": ["ok", None]}, "input"),
        ({"input": []}, "input"),
        ({"input": {"a": "b"}}, "input"),
        ({"model": 7}, "model"),
        ({"user": 7}, "user"),
        ({"temperature": 0.5}, "temperature"),
    ],
)
def test_strict_types_name_the_field(
    product: tuple[EmbeddingHTTPServer, int], extra: dict[str, Any], param: str
) -> None:
    _, port = product
    status, body, _ = _post(port, json.dumps({"input": "x", "model": M} | extra))
    assert status == 400 and body["error"]["param"] == param, body
    assert param in body["error"]["message"]


def test_size_bounds(product: tuple[EmbeddingHTTPServer, int]) -> None:
    _, port = product
    t0 = time.monotonic()
    status, body, _ = _post(port, json.dumps({"input": "x" * 40_000, "model": M}))
    assert status == 400 and "'input[0]' has 40000 characters; at most 32768" in body["error"]["message"]
    status, body, _ = _post(port, json.dumps({"input": "x" * (9 << 20), "model": M}))  # 9 MB
    assert status == 413 and body["error"]["code"] == "body_too_large"
    status, body, _ = _post(port, json.dumps({"input": ["x" * 30_000] * 40, "model": M}))
    assert status == 400 and "1200000 characters in all; at most 1000000" in body["error"]["message"]
    status, body, _ = _post(port, json.dumps({"input": ["x"] * 2049, "model": M}))
    assert status == 400 and "2049 items; at most 2048" in body["error"]["message"]
    assert time.monotonic() - t0 < 10  # refused before any model work (a 10 MB text took 26.9 s)
    status, body, _ = _post(port, b"", **{"Transfer-Encoding": "chunked"})
    assert status == 411


def test_time_budget_gives_504(local_provider: object) -> None:
    limits = ServerLimits(request_timeout_s=0.5, chunk_texts=8)
    server, port = start_embedding_server(local_provider, model_name=M, limits=limits)  # type: ignore[arg-type]
    try:
        t0 = time.monotonic()
        status, body, headers = _post(port, json.dumps({"input": _texts(1024), "model": M}))
        took = time.monotonic() - t0
        assert status == 504 and body["error"]["code"] == "timeout", body
        assert headers.get("Retry-After") == "1"
        assert took < 10, took  # the budget plus at most one running chunk, not 1024 texts
        assert _client(port).embeddings.create(model=M, input="after a timeout").data
    finally:
        server.stop()


def test_small_request_is_not_blocked_by_a_big_one(local_provider: object) -> None:
    # 24 chunks: the small one waits for one at most. (With 12 the big one took 2.6 s, and
    # a small answer at 0.90 s under a parallel test worker missed the third by 0.02 s.)
    limits = ServerLimits(chunk_texts=8)
    server, port = start_embedding_server(local_provider, model_name=M, limits=limits)  # type: ignore[arg-type]
    try:
        big: dict[str, float] = {}

        def run_big() -> None:
            t0 = time.monotonic()
            _client(port).embeddings.create(model=M, input=_texts(192, 300), encoding_format="float")
            big["took"], big["end"] = time.monotonic() - t0, time.monotonic()

        thread = threading.Thread(target=run_big)
        thread.start()
        time.sleep(0.5)  # the big one is being embedded
        t0 = time.monotonic()
        _client(port).embeddings.create(model=M, input="one small text", encoding_format="float")
        small, small_end = time.monotonic() - t0, time.monotonic()
        thread.join(300)
        assert "took" in big
        assert small_end < big["end"], (small, big)  # answered while the big one still ran
        assert small < big["took"] / 3, (small, big)
    finally:
        server.stop()


def test_full_queue_is_a_503_with_retry_after(local_provider: object) -> None:
    limits = ServerLimits(max_queued=1)
    server, port = start_embedding_server(local_provider, model_name=M, limits=limits)  # type: ignore[arg-type]
    try:
        thread = threading.Thread(target=lambda: _post(port, json.dumps({"input": _texts(32), "model": M})))
        thread.start()
        time.sleep(0.3)
        status, body, headers = _post(port, json.dumps({"input": "x", "model": M}))
        assert status == 503 and body["error"]["code"] == "server_busy" and headers["Retry-After"] == "1"
        thread.join(300)
        assert _client(port).embeddings.create(model=M, input="x").data
    finally:
        server.stop()
