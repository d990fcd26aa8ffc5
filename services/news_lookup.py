"""How a ranker in its own process scores articles upserted after its model was trained.

UpsertNews writes to the retrieval process (and durably to Milvus); a ranker pod knows only
its artifact. Before scoring, the ranker asks retrieval's NewsService.GetNews for the ids it
does not know, adds what comes back to its table (vector, category, entities, publish time,
text vector) and scores those articles from their content; after a ranker restart the same
happens again on first sight. Lookups are bounded (a deadline within the Rank call's, a pause
after a failure, a memory of ids retrieval does not know), so a retrieval that is down costs
a Rank call at most one short deadline and the articles are scored as unknown meanwhile.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime

import grpc
import numpy as np

from newsrec.data.types import Entity, NewsArticle
from newsrec.models.serving import ServingModel
from services import security
from services.config import RankerConfig, ServeConfig
from services.gateway import channel_options
from services.generated.newsrec.v1 import news_pb2, news_pb2_grpc
from services.metrics import RankerMetrics

log = logging.getLogger("services.news_lookup")
MAX_REMEMBERED = 100_000  # ids remembered as missing; beyond, the memory starts over


class UpsertedNewsLookup:
    """Fills `model` with upserted articles that Rank calls name, asked of retrieval."""

    def __init__(self, stub: object, model: ServingModel, config: RankerConfig) -> None:
        self.stub = stub
        self.model = model
        self.config = config
        self._fetched: dict[str, float] = {}  # upserted id -> monotonic time it was learnt
        self._missing: dict[str, float] = {}  # id retrieval did not know -> when
        self._paused_until = 0.0
        self._lock = threading.Lock()  # one writer of the model's table at a time
        self.metrics: RankerMetrics | None = None
        self.variant = "default"

    @classmethod
    def connect(cls, config: ServeConfig, model: ServingModel) -> UpsertedNewsLookup:
        assert config.ranker.news_source is not None
        make = security.channel_factory(config)
        channel = make(config.ranker.news_source, channel_options(config.ranker.reconnect))
        return cls(news_pb2_grpc.NewsServiceStub(channel), model, config.ranker)

    def wanted(self, ids: Sequence[str]) -> list[str]:
        """The ids to ask for now: unknown to the model and not known missing, or learnt
        more than `refresh_seconds` ago (re-upserts)."""
        now = time.monotonic()
        if now < self._paused_until:
            return []
        row = getattr(self.model, "row", None)
        known = row if row is not None else self.model.news_metadata
        out = []
        for news_id in dict.fromkeys(ids):
            learnt = self._fetched.get(news_id)
            if learnt is not None:
                if now - learnt > self.config.refresh_seconds:
                    out.append(news_id)
            elif known(news_id) is None:
                missed = self._missing.get(news_id)
                if missed is None or now - missed > self.config.miss_ttl_seconds:
                    out.append(news_id)
        return out

    def ensure(self, ids: Sequence[str], time_left: float | None = None) -> None:
        """Learn the upserted articles among `ids` (candidates and history) before scoring."""
        want = self.wanted(ids)
        if not want:
            return
        timeout = self.config.lookup_timeout_seconds
        if time_left is not None:
            timeout = max(min(timeout, time_left / 2), 0.001)
        request = news_pb2.GetNewsRequest(news_ids=want, model_version=self.model.model_version)
        try:
            reply = self.stub.GetNews(request, timeout=timeout)  # type: ignore[attr-defined]
        except grpc.RpcError as exc:
            self._paused_until = time.monotonic() + self.config.retry_after_seconds
            self._count("error", len(want))
            log.warning(
                "upserted news lookup failed; scoring those candidates as unknown",
                extra={"code": exc.code().name, "ids": len(want)},
            )
            return
        self._learn(want, reply.articles)

    def _learn(self, want: list[str], articles: Sequence[news_pb2.StoredNews]) -> None:
        now = time.monotonic()
        found = set()
        with self._lock:
            for a in articles:
                vector = np.asarray(a.vector, dtype=np.float32)
                if (
                    a.news_id not in want
                    or vector.shape != (self.model.dim,)
                    or not np.isfinite(vector).all()
                ):
                    continue  # not asked for, or not of this model: never in the table
                first_seen = datetime.fromtimestamp(a.published_at, tz=UTC)
                text = np.asarray(a.text_vector, dtype=np.float32) if len(a.text_vector) else None
                self.model.add_news(_article(a), vector, first_seen, text)
                self._fetched[a.news_id] = now
                found.add(a.news_id)
            if len(self._missing) > MAX_REMEMBERED:
                self._missing.clear()
            for news_id in want:
                if news_id not in found and news_id not in self._fetched:
                    self._missing[news_id] = now
        self._count("found", len(found))
        self._count("missing", len(want) - len(found))

    def _count(self, result: str, n: int) -> None:
        if self.metrics is not None and n:
            self.metrics.news_lookups.labels(variant=self.variant, result=result).inc(n)


def _article(a: news_pb2.StoredNews) -> NewsArticle:
    ents = [Entity(e.wikidata_id, e.label, e.type, e.confidence or 1.0) for e in a.entities]
    return NewsArticle(a.news_id, a.category, a.subcategory, a.title, a.abstract, title_entities=ents)
