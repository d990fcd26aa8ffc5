"""Upserted news is durable in full (issue 15 defect 4): after a restart, and after kill -9
right after the acknowledgement, an article added by UpsertNews comes back with its title,
category and content, and the ranker (its own process, the chart's shape) scores it from its
content (news-tower vector, category, entities, freshness, text) as before the restart, not
as an unknown id. Two upserted articles of different texts score by relevance to the user.

Real processes in split mode with the variant pinned (tests/faults/fault_stack.py), Milvus Lite
behind the retrieval's in-memory mirror, and an OpenAI-compatible embedding server over the
local model (so a retrieval restart does not reload the model: the test stays short). The
ranker is configured with `ranker.news_source`: it asks retrieval for the ids it does not know.
"""

from __future__ import annotations

import json
import signal
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
from fault_stack import FaultStack, redis_available

from newsrec.data import read_news
from newsrec.data.types import Entity, NewsArticle
from services.generated.newsrec.v1 import (
    common_pb2,
    news_pb2,
    news_pb2_grpc,
    ranking_pb2,
    ranking_pb2_grpc,
    retrieval_pb2,
    retrieval_pb2_grpc,
    user_encoder_pb2,
    user_encoder_pb2_grpc,
)

SCORE_MARGIN = 1e-3  # same features, same model: a restart may not move a score by more
UNKNOWN = "NOT-UPSERTED-1"


@dataclass
class UpsertStack(FaultStack):
    """The fault suite's split stack, with an embedding server for UpsertNews and the
    ranker pointed at retrieval for upserted articles."""

    embed_port: int = 0

    def config(self, service: str, registry: Path) -> dict[str, Any]:
        cfg = super().config(service, registry)
        if service == "retrieval":
            cfg["text_provider"]["base_url"] = f"http://127.0.0.1:{self.embed_port}/v1"
        if service == "ranker":
            # wide, like the gateways' stage deadlines: a loaded CI box, not the fault, is slow
            cfg["ranker"] = {
                "news_source": f"127.0.0.1:{self.ports['retrieval']}",
                "lookup_timeout_seconds": 2.0,
            }
        return cfg

    def stub(self, service: str, cls: Any) -> Any:
        return cls(grpc.insecure_channel(f"127.0.0.1:{self.ports[service]}"))

    def restart_backends(self, sig: int) -> None:
        """Stop retrieval and the ranker with `sig` (SIGTERM: drained; SIGKILL: kill -9 of the
        process group, Milvus Lite included), start both again, wait until they serve."""
        for name in ("retrieval", "ranker"):
            proc = self.procs[name]
            if sig == signal.SIGKILL:
                proc.kill()
            else:
                proc.signal(sig)
                assert proc.popen is not None
                proc.popen.wait(30)
        for name in ("retrieval", "ranker"):
            self.procs[name].start()
        for name in ("retrieval", "ranker"):
            self.wait_serving(name)


@pytest.fixture(scope="module")
def upsert_stack(fault_registry: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[UpsertStack]:
    if not redis_available():
        pytest.skip("redis-server / redis-cli not installed (apt-get install redis-server)")
    import torch

    from newsrec.embed.config import ProviderConfig
    from newsrec.embed.local import LocalProvider
    from newsrec.embed.server import start_embedding_server

    torch.set_num_threads(1)
    server, port = start_embedding_server(
        LocalProvider.from_config(ProviderConfig()), model_name="text-embedding-3-small"
    )
    stack = UpsertStack(tmp_path_factory.mktemp("upsert"), embed_port=port)
    stack.build(fault_registry)
    try:
        stack.start()
        yield stack
    finally:
        stack.stop()
        server.stop()


@dataclass
class Reader:
    """A dev user whose history is mostly one category, and the articles to upsert."""

    user: str
    history: list[str]
    vector: list[float]
    relevant: NewsArticle  # an article of the history's category (its text, entities dropped)
    unrelated: NewsArticle  # an article of a category absent from the history
    data_clock: float
    news: list[NewsArticle]  # the train split's articles


@pytest.fixture(scope="module")
def reader(upsert_stack: UpsertStack, fault_model: Path) -> Reader:
    from newsrec.data import read_behaviors

    news, _ = read_news(fault_model / "data/train/news.tsv")
    by_id = {a.news_id: a for a in news}
    imps, _ = read_behaviors(fault_model / "data/dev/behaviors.tsv")
    for imp in imps:
        cats = Counter(by_id[h].category for h in imp.history if h in by_id)
        if len(imp.history) >= 5 and cats and cats.most_common(1)[0][1] >= 0.8 * len(imp.history):
            break
    else:
        pytest.fail("no dev user with a one-category history")
    cat = cats.most_common(1)[0][0]
    relevant = next(a for a in news if a.category == cat and a.news_id not in imp.history)
    unrelated = next(a for a in news if a.category not in cats)
    encoder = upsert_stack.stub("user-encoder", user_encoder_pb2_grpc.UserEncoderServiceStub)
    reply = encoder.EncodeUser(
        user_encoder_pb2.EncodeUserRequest(user_id=imp.user_id, history_ids=imp.history, model_version="v1"),
        timeout=10,
    )
    clock = json.loads((fault_model / "serving/config.json").read_text())["data_clock"]
    return Reader(imp.user_id, list(imp.history), list(reply.vector), relevant, unrelated, float(clock), news)


def _upsert(stack: UpsertStack, news_id: str, src: NewsArticle, published_at: int, entities: bool) -> None:
    ents = [news_pb2.NewsEntity(wikidata_id=e.wikidata_id, label=e.label) for e in src.title_entities]
    reply = stack.stub("retrieval", news_pb2_grpc.NewsServiceStub).UpsertNews(
        news_pb2.UpsertNewsRequest(
            news_id=news_id,
            title=src.title,
            abstract=src.abstract,
            category=src.category,
            subcategory=src.subcategory,
            entities=ents if entities else [],
            published_at=published_at,
        ),
        timeout=60,
    )
    assert reply.news_id == news_id and reply.model_version == "v1"


def _rank(stack: UpsertStack, r: Reader, ids: list[str]) -> dict[str, float]:
    reply = stack.stub("ranker", ranking_pb2_grpc.RankingServiceStub).Rank(
        ranking_pb2.RankRequest(
            user_id=r.user, user_vector=r.vector, history_ids=r.history, candidate_ids=ids
        ),
        timeout=10,
    )
    return {c.news_id: c.score for c in reply.candidates}


def _newer_than(stack: UpsertStack, r: Reader, after: float) -> dict[str, tuple[str, str, str, int]]:
    """Retrieve restricted to articles published after `after` (only upserted ones are):
    id -> (title, category, subcategory, published_at) as retrieval answers them."""
    got = stack.stub("retrieval", retrieval_pb2_grpc.RetrievalServiceStub).Retrieve(
        retrieval_pb2.RetrieveRequest(
            vector=r.vector, k=50, filters=common_pb2.RetrievalFilters(published_after=int(after))
        ),
        timeout=10,
    )
    return {
        n: (t, c, s, p)
        for n, t, c, s, p in zip(
            got.news_ids, got.titles, got.categories, got.subcategories, got.published_at, strict=True
        )
    }


def test_upserted_articles_score_by_relevance_and_survive_a_restart(
    upsert_stack: UpsertStack, reader: Reader
) -> None:
    """(b) two upserted articles without entities score apart, the one like the history higher;
    (a) after both stateful services restart, titles and categories come back and the ranker
    scores them as before (within SCORE_MARGIN), not as the unknown id next to them."""
    published = int(reader.data_clock) + 3600
    _upsert(upsert_stack, "UP-REL", reader.relevant, published, entities=False)
    _upsert(upsert_stack, "UP-IRR", reader.unrelated, published, entities=False)
    ids = ["UP-REL", "UP-IRR", UNKNOWN, *_artifact_ids(upsert_stack, reader)]
    before = _rank(upsert_stack, reader, ids)
    print(
        f"\nbefore restart: relevant {before['UP-REL']:.3f}, unrelated {before['UP-IRR']:.3f}, "
        f"unknown id {before[UNKNOWN]:.3f}"
    )
    assert before["UP-REL"] > before["UP-IRR"] + 0.1, before  # relevance, not one score for all
    for news_id in ("UP-REL", "UP-IRR"):
        assert abs(before[news_id] - before[UNKNOWN]) > 0.1, before  # content, not the unknown id
    shown = _newer_than(upsert_stack, reader, reader.data_clock)
    upsert_stack.restart_backends(signal.SIGTERM)
    after = _rank(upsert_stack, reader, ids)
    print(f"after restart: relevant {after['UP-REL']:.3f}, unrelated {after['UP-IRR']:.3f}")
    for news_id in ("UP-REL", "UP-IRR"):
        assert abs(after[news_id] - before[news_id]) < SCORE_MARGIN, (
            news_id,
            before[news_id],
            after[news_id],
        )
    again = _newer_than(upsert_stack, reader, reader.data_clock)
    assert again == shown and again["UP-REL"] == (
        reader.relevant.title,
        reader.relevant.category,
        reader.relevant.subcategory,
        published,
    ), again


def test_kill9_right_after_an_acknowledged_upsert_loses_nothing(
    upsert_stack: UpsertStack, reader: Reader, fault_registry: Path
) -> None:
    """(c) kill -9 of retrieval (with its Milvus Lite) and the ranker right after UpsertNews
    answered: after the restart the article is back in full (title, category, publish time,
    abstract, entities, vector) and ranked from that content."""
    published = int(reader.data_clock) + 7200
    src = next(
        a
        for a in reader.news
        if a.title_entities and a.category == reader.relevant.category and a.news_id not in reader.history
    )
    _upsert(upsert_stack, "UP-KILL", src, published, entities=True)
    upsert_stack.restart_backends(signal.SIGKILL)
    shown = _newer_than(upsert_stack, reader, reader.data_clock + 3600)
    assert shown == {"UP-KILL": (src.title, src.category, src.subcategory, published)}, shown
    stored = upsert_stack.stub("retrieval", news_pb2_grpc.NewsServiceStub).GetNews(
        news_pb2.GetNewsRequest(news_ids=["UP-KILL"], model_version="v1"), timeout=10
    )
    (got,) = stored.articles
    assert (got.abstract, got.published_at) == (src.abstract, published)
    assert [e.wikidata_id for e in got.entities] == [e.wikidata_id for e in src.title_entities]
    ids = ["UP-KILL", UNKNOWN, *_artifact_ids(upsert_stack, reader)]
    scores = _rank(upsert_stack, reader, ids)
    expected = _expected_score(fault_registry, reader, got, ids)
    print(
        f"\nafter kill -9: served {scores['UP-KILL']:.4f}, from its content {expected:.4f}, "
        f"unknown id {scores[UNKNOWN]:.4f}"
    )
    assert abs(scores["UP-KILL"] - expected) < SCORE_MARGIN
    assert abs(scores["UP-KILL"] - scores[UNKNOWN]) > 0.1


def _artifact_ids(stack: UpsertStack, reader: Reader) -> list[str]:
    """Twenty articles of the artifact, as retrieval ranks them for the reader (fixed list)."""
    got = stack.stub("retrieval", retrieval_pb2_grpc.RetrievalServiceStub).Retrieve(
        retrieval_pb2.RetrieveRequest(
            vector=reader.vector,
            k=20,
            filters=common_pb2.RetrievalFilters(exclude_ids=reader.history, published_after=0),
        ),
        timeout=10,
    )
    return [n for n in got.news_ids if not n.startswith("UP-")][:20]


def _expected_score(registry: Path, reader: Reader, got: news_pb2.StoredNews, ids: list[str]) -> float:
    """The score the served model gives the article from its stored content, computed here."""
    from newsrec.models import load_serving
    from newsrec.registry import Registry

    model = load_serving(Registry(registry).resolve("newsrec", "v1").artifact_dir("serving"))
    article = NewsArticle(
        got.news_id,
        got.category,
        got.subcategory,
        got.title,
        got.abstract,
        title_entities=[Entity(e.wikidata_id, e.label, e.type, e.confidence) for e in got.entities],
    )
    first_seen = datetime.fromtimestamp(got.published_at, tz=UTC)
    model.add_news(
        article, np.asarray(got.vector, np.float32), first_seen, np.asarray(got.text_vector, np.float32)
    )
    scores = model.rank(np.asarray(reader.vector, np.float32), reader.history, ids)
    return float(scores[ids.index(got.news_id)])


def test_ranker_answers_while_retrieval_is_down(upsert_stack: UpsertStack, reader: Reader) -> None:
    """Retrieval killed: the ranker still scores the upserted articles it has learnt from
    their content, and an id it cannot look up as unknown, promptly (never an error); the
    failed lookup shows in `newsrec_ranker_news_lookups_total{result="error"}`."""
    ids = ["UP-REL", "UP-IRR", UNKNOWN, *reader.history[:2]]
    before = _rank(upsert_stack, reader, [*ids, "UP-NEVER-1"])  # retrieval: not an upsert
    upsert_stack.procs["retrieval"].kill()
    try:
        t0 = time.monotonic()
        down = _rank(upsert_stack, reader, [*ids, "UP-NEVER-2"])  # a lookup that fails
        took = time.monotonic() - t0
        errors = _lookup_errors(upsert_stack)
    finally:
        upsert_stack.procs["retrieval"].start()
    print(
        f"\nretrieval down: Rank in {took * 1000:.0f} ms, relevant {down['UP-REL']:.3f},"
        f" lookup errors {errors}"
    )
    assert took < 3.0  # at most one lookup deadline (2 s here), not a hang
    for news_id in ("UP-REL", "UP-IRR"):
        assert abs(down[news_id] - before[news_id]) < SCORE_MARGIN, (news_id, before, down)
    assert abs(down["UP-NEVER-2"] - down[UNKNOWN]) < SCORE_MARGIN and errors >= 1
    upsert_stack.wait_serving("retrieval")


def _lookup_errors(stack: UpsertStack) -> float:
    """The ranker's `newsrec_ranker_news_lookups_total{result="error"}`, from its /metrics."""
    import urllib.request

    import yaml
    from prometheus_client.parser import text_string_to_metric_families

    port = yaml.safe_load((stack.root / "ranker.yaml").read_text())["metrics_port"]
    body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    return sum(
        sample.value
        for family in text_string_to_metric_families(body)
        for sample in family.samples
        if sample.name == "newsrec_ranker_news_lookups_total" and sample.labels.get("result") == "error"
    )
