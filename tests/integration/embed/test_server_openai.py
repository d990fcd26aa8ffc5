"""The OpenAI-compatible server through the real `openai` client, and precompute over HTTP:
retries, failures that leave no zero vector, resume, and the cost ledger."""

from __future__ import annotations

import base64
import json
import urllib.request
from pathlib import Path

import numpy as np
import openai
import pytest
from embed_helpers import hand_made_news, read_json, write_news
from faulty_server import FaultPlan, text_hash
from faulty_server import FaultyEmbeddingServer as EmbeddingHTTPServer

from newsrec.embed.cache import EmbeddingCache
from newsrec.embed.config import PrecomputeConfig, ProviderConfig
from newsrec.embed.precompute import precompute
from newsrec.embed.providers import build_provider
from newsrec.embed.store import EmbeddingTable, load_embeddings, save_embeddings


def _client(port: int, key: str = "sk-anything") -> openai.OpenAI:
    return openai.OpenAI(api_key=key, base_url=f"http://127.0.0.1:{port}/v1", max_retries=0, timeout=30)


def _config(port: int, tmp: Path, **kw: object) -> PrecomputeConfig:
    prov = {"provider": "openai", "base_url": f"http://127.0.0.1:{port}/v1", "dimensions": 384}
    prov.update({"backoff_base": 0.02, "max_retries": 6, "timeout": 30.0})
    prov.update({k: v for k, v in kw.items() if k in ProviderConfig.model_fields})
    rest = {k: v for k, v in kw.items() if k not in ProviderConfig.model_fields}
    rest.setdefault("cache_dir", tmp / "cache")
    return PrecomputeConfig(provider=ProviderConfig(**prov), progress=False, **rest)  # type: ignore[arg-type]


M = "text-embedding-3-small"


def test_openai_shapes(embedding_server: tuple[EmbeddingHTTPServer, int]) -> None:
    server, port = embedding_server
    client = _client(port)
    texts = ["Title: Storm\nAbstract: rain", "Title: Goal\nAbstract: late winner"]
    floats = client.embeddings.create(model=M, input=texts, encoding_format="float")
    b64 = client.embeddings.create(model=M, input=texts)  # the SDK asks for base64 by default
    assert [d.index for d in floats.data] == [0, 1] and len(floats.data[0].embedding) == 384
    np.testing.assert_allclose(floats.data[1].embedding, b64.data[1].embedding, atol=1e-6)
    assert floats.usage.prompt_tokens == floats.usage.total_tokens > 0
    assert floats.model == "text-embedding-3-small"
    one = client.embeddings.create(model=M, input="just one", dimensions=64, encoding_format="float")
    assert len(one.data) == 1 and np.linalg.norm(one.data[0].embedding) == pytest.approx(1.0, abs=1e-5)
    assert [m.id for m in client.models.list()] == ["text-embedding-3-small", "my-embedder"]
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as resp:
        assert json.loads(resp.read()) == {"status": "ok"}
    with pytest.raises(openai.BadRequestError, match="empty string"):
        client.embeddings.create(model=M, input=["ok", ""])
    raw = client.embeddings.with_raw_response.create(model=M, input="x", encoding_format="base64")
    vec = np.frombuffer(base64.b64decode(json.loads(raw.text)["data"][0]["embedding"]), "<f4")
    assert vec.shape == (384,)


def test_bearer_key_and_admin_faults(local_provider: object) -> None:
    from faulty_server import start_faulty_server

    server, port = start_faulty_server(local_provider, api_key="sk-right", model_name=M)  # type: ignore[arg-type]
    try:
        with pytest.raises(openai.AuthenticationError):
            _client(port, "sk-wrong").embeddings.create(model=M, input="x")
        req = urllib.request.Request(
            f"http://127.0.0.1:{port}/admin/faults",
            data=json.dumps({"rate_limit": 1, "retry_after": 7}).encode(),
            headers={"Authorization": "Bearer sk-right", "Content-Type": "application/json"},
        )
        urllib.request.urlopen(req, timeout=5).close()
        with pytest.raises(openai.RateLimitError) as info:
            _client(port, "sk-right").embeddings.create(model=M, input="x")
        assert info.value.response.headers["retry-after"] == "7"
        assert _client(port, "sk-right").embeddings.create(model=M, input="x").data
    finally:
        server.stop()


def test_faults_are_retried_and_match_a_clean_run(
    tmp_path: Path, embedding_server: tuple[EmbeddingHTTPServer, int], api_key: str
) -> None:
    server, port = embedding_server
    news = write_news(tmp_path / "news.tsv", hand_made_news(48))
    clean = precompute([news], _config(port, tmp_path / "a", batch_size=8), tmp_path / "a")
    assert clean.ok and clean.retries == 0
    server.state.set_plan(FaultPlan(rate_limit=2, retry_after=0.4, server_error=2, drop=1))
    faulty = precompute([news], _config(port, tmp_path / "b", batch_size=8, concurrency=1), tmp_path / "b")
    assert faulty.ok and faulty.failures == []
    assert faulty.retries == 5 and faulty.rate_limited == 2 and faulty.requests == 6 + 5
    assert faulty.duration_s >= 0.8  # two Retry-After: 0.4 honoured
    a, b = load_embeddings(tmp_path / "a"), load_embeddings(tmp_path / "b")
    assert a.ids == b.ids
    np.testing.assert_allclose(a.vectors, b.vectors, atol=1e-5)
    assert server.state.faults == {"429": 2, "500": 2, "drop": 1}


def test_failed_batch_is_reported_never_zero_and_resumes(
    tmp_path: Path, embedding_server: tuple[EmbeddingHTTPServer, int], api_key: str
) -> None:
    server, port = embedding_server
    rows = hand_made_news(40)
    rows[5] = ("BAD1", "news", "poison pill", "this one is rejected")
    news = write_news(tmp_path / "news.tsv", rows)
    server.state.set_plan(FaultPlan(fail_substring="poison", fail_status=400))
    cfg = _config(port, tmp_path, batch_size=8, concurrency=2)
    save_embeddings(tmp_path / "out", EmbeddingTable(["OLD"], np.ones((1, 384), np.float32)))  # stale table
    report = precompute([news], cfg, tmp_path / "out")
    assert not report.ok and len(report.failures) == 1
    assert "BAD1" in report.failed_ids and len(report.failed_ids) == 8
    assert report.failures[0].status == 400 and "HTTP 400" in report.failures[0].error
    assert server.state.faults["fail"] == 1  # a 400 is final: not retried
    assert not (tmp_path / "out" / "vectors.npy").exists()  # no table with holes, zeros or stale rows
    assert not (tmp_path / "out" / "metadata.json").exists()
    failures = read_json(tmp_path / "out" / "failures.json")
    assert sorted(failures["failed_ids"]) == sorted(report.failed_ids)
    with EmbeddingCache(tmp_path / "cache") as cache:
        assert len(cache) == 32  # everything that succeeded is kept

    server.state.set_plan(FaultPlan())
    sent_before = sum(server.state.embedded.values())
    again = precompute([news], cfg, tmp_path / "out")
    assert again.ok and again.cache_hits == 32 and again.embedded_texts == 8
    assert sum(server.state.embedded.values()) - sent_before == 8
    assert max(server.state.embedded.values()) == 1
    table = load_embeddings(tmp_path / "out")
    assert sorted(table.ids) == sorted(r[0] for r in rows)
    assert np.all(np.linalg.norm(table.vectors, axis=1) > 0.99)
    assert not (tmp_path / "out" / "failures.json").exists()


def test_server_errors_give_up_after_max_retries(
    tmp_path: Path, embedding_server: tuple[EmbeddingHTTPServer, int], api_key: str
) -> None:
    server, port = embedding_server
    news = write_news(tmp_path / "news.tsv", hand_made_news(4))
    server.state.set_plan(FaultPlan(server_error=100))
    report = precompute([news], _config(port, tmp_path, max_retries=2), tmp_path / "out")
    assert not report.ok and report.failures[0].status == 500
    assert "gave up after 3 attempts" in report.failures[0].error
    assert server.state.faults["500"] == 3


def test_cost_ledger_and_dedup_over_http(
    tmp_path: Path, embedding_server: tuple[EmbeddingHTTPServer, int], api_key: str
) -> None:
    server, port = embedding_server
    rows = hand_made_news(20)
    rows += [("DUP1", "sports", rows[0][2], rows[0][3]), ("DUP2", "sports", rows[0][2], rows[0][3])]
    train = write_news(tmp_path / "train" / "news.tsv", rows[:15])
    dev = write_news(tmp_path / "dev" / "news.tsv", rows[10:])  # 5 ids shared with train
    report = precompute([train, dev], _config(port, tmp_path, batch_size=6), tmp_path / "out")
    assert report.ok and report.count == 22 and report.unique_texts == 20
    assert len(server.state.embedded) == 20 and max(server.state.embedded.values()) == 1
    assert server.state.embedded[text_hash(f"Title: {rows[0][2]}\nAbstract: {rows[0][3]}")] == 1
    meta = read_json(tmp_path / "out" / "metadata.json")
    assert meta["model"] == "text-embedding-3-small" and meta["dimension"] == 384
    # tokens billed = what the server reported in `usage`; price $0.02 / 1M
    assert meta["tokens_sent"] == report.tokens_sent > 0
    assert meta["estimated_cost_usd"] == pytest.approx(meta["tokens_sent"] * 0.02 / 1e6)
    with EmbeddingCache(tmp_path / "cache") as cache:
        assert cache.ledger().tokens == meta["tokens_sent"] and cache.ledger().texts == 20


def test_build_provider_is_reusable_in_a_long_running_process(
    embedding_server: tuple[EmbeddingHTTPServer, int], api_key: str
) -> None:
    _, port = embedding_server
    provider = build_provider(
        ProviderConfig(provider="openai", base_url=f"http://127.0.0.1:{port}/v1", model="my-embedder")
    )
    assert provider.dimension == 384  # unknown model: learned with one probe request
    for _ in range(3):
        out = provider.embed(["Title: cold start\nAbstract: a new article"])
        assert out.vectors.shape == (1, 384)
    assert api_key not in repr(provider)


def test_openai_truncation_is_counted_and_applied(
    tmp_path: Path, embedding_server: tuple[EmbeddingHTTPServer, int], api_key: str
) -> None:
    server, port = embedding_server
    rows = [
        ("T1", "news", "short", "x"),
        ("T2", "news", "a much longer title here", "and a long abstract too"),
    ]
    news = write_news(tmp_path / "news.tsv", rows)
    report = precompute([news], _config(port, tmp_path, max_tokens=10), tmp_path / "out")
    long_text = "Title: a much longer title here\nAbstract: and a long abstract too"
    assert report.ok and report.truncated == 1 and report.token_counting == "estimate: chars/3"
    # chars/3 estimate: 10 tokens -> the first 30 characters are sent, nothing more
    assert server.state.embedded[text_hash(long_text[:30])] == 1
    assert server.state.embedded[text_hash(long_text)] == 0
    assert report.total_tokens == 10 + -(-len("Title: short\nAbstract: x") // 3)


def test_fault_plan_rejects_unknown_fields() -> None:
    assert FaultPlan.from_dict({"rate_limit": 2}).rate_limit == 2
    with pytest.raises(ValueError, match="rate_limits"):
        FaultPlan.from_dict({"rate_limits": 2})
