"""Cache keys, crash-safe writes, the ledger, prices and the typed config."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from newsrec.embed.cache import EmbeddingCache, cache_key
from newsrec.embed.config import PrecomputeConfig, ProviderConfig
from newsrec.embed.costs import estimate_cost
from newsrec.embed.precompute import _batches
from newsrec.embed.providers import SecretKey, load_api_key
from newsrec.errors import InvalidInput


def test_cache_key_depends_on_every_field() -> None:
    base = cache_key("openai", "text-embedding-3-small", 256, "Title: a\nAbstract: b")
    assert base == cache_key("openai", "text-embedding-3-small", 256, "Title: a\nAbstract: b")
    others = {
        cache_key("local", "text-embedding-3-small", 256, "Title: a\nAbstract: b"),
        cache_key("openai", "text-embedding-3-large", 256, "Title: a\nAbstract: b"),
        cache_key("openai", "text-embedding-3-small", None, "Title: a\nAbstract: b"),
        cache_key("openai", "text-embedding-3-small", 256, "Title: a\nAbstract: b "),
        cache_key("openai", "text-embedding-3-small2", 56, "Title: a\nAbstract: b"),  # no field bleed
    }
    assert base not in others and len(others) == 5


def test_cache_roundtrip_and_ledger(tmp_path: Path) -> None:
    vecs = np.random.default_rng(0).normal(size=(3, 5)).astype(np.float32)
    with EmbeddingCache(tmp_path) as cache:
        cache.put_batch(["a", "b"], vecs[:2], provider="openai", model="m", tokens=120)
        cache.put_batch(["c"], vecs[2:], provider="openai", model="m2", tokens=30)
        got = cache.get_many(["a", "c", "missing"])
        assert set(got) == {"a", "c"}
        np.testing.assert_array_equal(got["c"], vecs[2])
        assert len(cache) == 3
        assert cache.ledger().tokens == 150 and cache.ledger().batches == 2
        assert cache.ledger(model="m").texts == 2


def test_committed_batches_survive_kill9(tmp_path: Path) -> None:
    """A writer killed with SIGKILL right after put_batch returns loses nothing."""
    script = textwrap.dedent(
        f"""
        import os, signal, numpy as np
        from pathlib import Path
        from newsrec.embed.cache import EmbeddingCache
        cache = EmbeddingCache(Path({str(tmp_path)!r}))
        for b in range(20):
            cache.put_batch([f"k{{b}}-{{i}}" for i in range(10)], np.full((10, 4), b, np.float32),
                            provider="p", model="m", tokens=7)
        os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], env=os.environ.copy(), timeout=60)
    assert proc.returncode == -9
    with EmbeddingCache(tmp_path) as cache:
        assert len(cache) == 200
        assert cache.ledger().tokens == 140
        assert cache.get_many(["k19-9"])["k19-9"].tolist() == [19.0] * 4


def test_cost_arithmetic() -> None:
    assert estimate_cost("openai", "text-embedding-3-small", 1_000_000).usd == pytest.approx(0.02)
    assert estimate_cost("openai", "text-embedding-3-large", 250_000).usd == pytest.approx(0.0325)
    assert estimate_cost("openai", "text-embedding-ada-002", 12_345).usd == pytest.approx(0.0012345)
    assert estimate_cost("local", "all-MiniLM-L6-v2", 10**9).usd == 0.0
    unknown = estimate_cost("openai", "nomic-embed-text", 1000)
    assert unknown.usd is None and "nomic-embed-text" in unknown.note


def test_batches_respect_count_and_token_budget() -> None:
    tokens = [10, 10, 10, 50, 60, 200, 5]
    assert _batches([0, 1, 2, 3], tokens, batch_size=2, max_tokens=1000) == [[0, 1], [2, 3]]
    assert _batches([0, 1, 2, 3, 4, 5, 6], tokens, batch_size=10, max_tokens=100) == [
        [0, 1, 2, 3],
        [4],
        [5],  # alone over budget: still sent, alone
        [6],
    ]


def test_config_is_strict() -> None:
    with pytest.raises(ValidationError):
        ProviderConfig(provider="cohere")  # type: ignore[arg-type]
    with pytest.raises(ValidationError):
        ProviderConfig.model_validate({"provider": "openai", "api_key": "sk-no"})  # keys never in config
    with pytest.raises(ValidationError):
        PrecomputeConfig(batch_size=0)
    assert ProviderConfig().resolved_model() == "all-MiniLM-L6-v2"
    assert ProviderConfig(provider="openai").resolved_model() == "text-embedding-3-small"


def test_api_key_sources_and_secrecy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    key = "sk-unit-9f8e7d6c5b4a"
    monkeypatch.setenv("OPENAI_API_KEY", key)
    secret = load_api_key(ProviderConfig(provider="openai"))
    assert secret.reveal() == key
    assert key not in repr(secret) and key not in str(secret) and key not in f"{secret}"
    keyfile = tmp_path / "key"
    keyfile.write_text("sk-from-file\n")
    assert load_api_key(ProviderConfig(provider="openai", api_key_file=keyfile)).reveal() == "sk-from-file"
    monkeypatch.delenv("OPENAI_API_KEY")
    with pytest.raises(InvalidInput, match="OPENAI_API_KEY"):
        load_api_key(ProviderConfig(provider="openai"))
    with pytest.raises(InvalidInput, match="not found"):
        load_api_key(ProviderConfig(provider="openai", api_key_file=tmp_path / "nope"))
    assert isinstance(secret, SecretKey)
