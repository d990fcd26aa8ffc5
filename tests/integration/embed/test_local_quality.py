"""The local provider and `precompute` with it: metadata, cache, dedup, truncation, topic separation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from embed_helpers import hand_made_news, read_json, write_news

from newsrec.data import read_news
from newsrec.embed.config import PrecomputeConfig
from newsrec.embed.local import LocalProvider
from newsrec.embed.precompute import PrecomputeReport, precompute
from newsrec.embed.quality import neighbour_category_agreement
from newsrec.embed.store import load_embeddings


def test_local_provider_vectors_and_truncation(local_provider: LocalProvider) -> None:
    long_text = "Title: marathon\nAbstract: " + "the runner kept going " * 120
    texts = ["Title: Storm hits coast\nAbstract: Heavy rain.", "Title: \nAbstract: ", long_text]
    result = local_provider.embed(texts)
    assert result.vectors.shape == (3, 384) and result.vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(result.vectors, axis=1), 1.0, atol=1e-5)
    assert local_provider.count_tokens([long_text])[0] > local_provider.max_tokens == 256
    assert result.tokens[2] == 256 and result.tokens[0] < 30
    assert result.billed_tokens == sum(result.tokens)


@pytest.fixture(scope="module")
def tiny_run(synth_tiny: Path, local_provider: LocalProvider, tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("emb")
    news = [synth_tiny / "train" / "news.tsv", synth_tiny / "dev" / "news.tsv"]
    report = precompute(news, PrecomputeConfig(progress=False), out, provider=local_provider)
    return news, out, report


def test_precompute_union_and_metadata(tiny_run: tuple[list[Path], Path, PrecomputeReport]) -> None:
    news, out, report = tiny_run
    ids = {a.news_id for p in news for a in read_news(p)[0]}
    table = load_embeddings(out)
    assert report.ok and set(table.ids) == ids and len(table.ids) == len(ids)
    assert table.vectors.shape == (len(ids), 384)
    assert np.all(np.abs(np.linalg.norm(table.vectors, axis=1) - 1) < 1e-4)  # no zero rows
    meta = read_json(out / "metadata.json")
    assert meta["provider"] == "local" and meta["model"] == "all-MiniLM-L6-v2" and meta["dimension"] == 384
    assert meta["count"] == len(ids) and meta["failures"] == 0 and meta["cache_hits"] == 0
    assert meta["estimated_cost_usd"] == 0.0 and meta["total_tokens"] == meta["tokens_sent"] > 0
    assert meta["duration_s"] > 0 and meta["embedded_texts"] == meta["unique_texts"]
    assert meta["news_files"] == [str(p) for p in news]


class NoCalls:
    """Wraps the provider: any embed call on a fully cached run is a bug."""

    def __init__(self, inner: LocalProvider) -> None:
        self.inner = inner
        self.name, self.model, self.max_tokens, self.max_concurrency = "local", inner.model, 256, 1
        self.dimension = inner.dimension

    def count_tokens(self, texts: list[str]) -> list[int]:
        return self.inner.count_tokens(texts)

    def embed(self, texts: list[str]) -> None:
        raise AssertionError(f"re-run sent {len(texts)} texts")


def test_rerun_is_all_cache_hits(
    tiny_run: tuple[list[Path], Path, PrecomputeReport], local_provider: LocalProvider
) -> None:
    news, out, first = tiny_run
    before = load_embeddings(out).vectors.copy()
    report = precompute(news, PrecomputeConfig(progress=False), out, provider=NoCalls(local_provider))  # type: ignore[arg-type]
    assert report.ok and report.embedded_texts == 0 and report.cache_hits == first.unique_texts
    assert report.tokens_sent == 0
    np.testing.assert_array_equal(load_embeddings(out).vectors, before)


def test_topic_separation_on_tiny(tiny_run: tuple[list[Path], Path, PrecomputeReport]) -> None:
    news, out, _ = tiny_run
    articles = {a.news_id: a for p in news for a in read_news(p)[0]}
    agreement, chance = neighbour_category_agreement(load_embeddings(out), articles, k=10)
    assert 0 < chance < 0.2
    assert agreement >= 3 * chance, (agreement, chance)


def test_dedup_empty_and_truncated(tmp_path: Path, local_provider: LocalProvider) -> None:
    rows = hand_made_news(6)
    rows += [("D1", "sports", "Same title", "Same abstract"), ("D2", "sports", "Same title", "Same abstract")]
    rows += [("D3", "sports", "Same title", "Same abstract"), ("E1", "news", "", "")]
    rows += [("L1", "news", "Long read", "word " * 400)]
    news = write_news(tmp_path / "news.tsv", rows)
    report = precompute(
        [news], PrecomputeConfig(progress=False, batch_size=4), tmp_path / "out", local_provider
    )
    assert report.ok and report.count == 11
    assert report.duplicate_texts == 2 and report.unique_texts == 9 and report.embedded_texts == 9
    assert report.empty_texts == 1 and report.truncated == 1
    table = load_embeddings(tmp_path / "out")
    np.testing.assert_array_equal(table.get("D1"), table.get("D3"))
    empty = table.get("E1")
    assert empty is not None and np.linalg.norm(empty) == pytest.approx(1.0, abs=1e-4)
