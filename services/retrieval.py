"""RetrievalService (ANN search over the served alias) and NewsService (cold-start upsert).

Both live in the retrieval process: an upserted article is in the same index and
catalog that Retrieve reads, so it is retrievable at once.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import grpc
import numpy as np
from prometheus_client import CollectorRegistry

from newsrec.data.types import Entity, NewsArticle
from newsrec.errors import InvalidInput, NewsrecError, Unavailable
from newsrec.index.articles import ArticleStore, StoredArticle
from newsrec.index.base import NewsRecord, SearchFilters, VectorIndex
from newsrec.models.serving import ServingModel
from services.catalog import NewsCatalog, NewsInfo
from services.config import MAX_HISTORY, MAX_K, ServeConfig
from services.generated.newsrec.v1 import (
    news_pb2,
    news_pb2_grpc,
    retrieval_pb2,
    retrieval_pb2_grpc,
)
from services.metrics import RetrievalMetrics
from services.server import NewsrecServer, ServiceBinding, full_name, start_server
from services.validation import (
    MAX_ID_LEN,
    NonFiniteResult,
    check_ids,
    check_k,
    check_key,
    check_no_control,
    check_scores,
    check_vector,
)

log = logging.getLogger("services.retrieval")
MAX_TEXT = 20_000
MAX_CATEGORIES = 100  # a filter naming more categories than any catalog has is a client bug
MAX_ENTITIES = 200  # per upserted article; the model reads only its first few
# Upper bound (exclusive) of an upserted published_at, 3000-01-01: datetime.fromtimestamp
# overflows far beyond it, after the index write.
MAX_PUBLISHED_AT = 32_503_680_000
INDEX_STALE = "index_stale"


@dataclass
class RetrievalDeps:
    index: VectorIndex
    alias: str
    model: ServingModel
    catalog: NewsCatalog
    # Text embeddings of new articles (UpsertNews); None disables the cold-start path.
    provider: Any | None = None
    # Upserted articles in full (restored at load, then every UpsertNews): what GetNews answers.
    upserted: dict[str, StoredArticle] = field(default_factory=dict)
    # `index.staleness` when the index has one (MirroredIndex): seconds since its source
    # last answered while it is failing, else None. Looked up once, not per call.
    staleness: Callable[[str], float | None] | None = field(init=False, default=None)
    # The index as an ArticleStore when it keeps articles (Milvus, and a mirror of it);
    # an index without one (tests' fakes) serves upserts until the process ends.
    store: ArticleStore | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        self.staleness = getattr(self.index, "staleness", None)
        if hasattr(self.index, "put_articles") and hasattr(self.index, "load_articles"):
            self.store = self.index  # type: ignore[assignment]


class _Base:
    def __init__(self, variant: str, metrics: RetrievalMetrics) -> None:
        self.variant = variant
        self.metrics = metrics
        self.deps: RetrievalDeps | None = None

    def _deps(self) -> RetrievalDeps:
        if self.deps is None:
            raise Unavailable("retrieval is still loading its model and index")
        return self.deps

    def refresh_size(self) -> None:
        deps = self._deps()
        try:
            self.metrics.index_size.labels(variant=self.variant).set(deps.index.count(deps.alias))
        except Exception:  # a gauge must never fail a call
            log.warning("index count failed", exc_info=True)

    def watch_source(self) -> None:
        """Export the index source's health, computed at scrape time (not on the Retrieve
        path). Only indexes that report it (MirroredIndex); a bare Milvus index fails the
        call instead, which the request histogram's `code` shows."""
        deps = self._deps()
        staleness, alias = deps.staleness, deps.alias
        if staleness is None:
            return
        self.metrics.index_source_up.labels(variant=self.variant).set_function(
            lambda: 0.0 if staleness(alias) is not None else 1.0
        )
        self.metrics.index_stale_seconds.labels(variant=self.variant).set_function(
            lambda: staleness(alias) or 0.0
        )


class RetrievalServicer(_Base, retrieval_pb2_grpc.RetrievalServiceServicer):
    def Retrieve(
        self, request: retrieval_pb2.RetrieveRequest, context: grpc.ServicerContext
    ) -> retrieval_pb2.RetrieveResponse:
        deps = self._deps()
        vector = check_vector(request.vector, deps.model.dim)
        check_k(request.k)
        f = request.filters
        filters = SearchFilters(
            exclude_ids=tuple(check_ids(f.exclude_ids, "filters.exclude_ids", MAX_HISTORY * 2)),
            categories=_categories(f.categories),
            published_after=f.published_after if f.HasField("published_after") else None,
        )
        start = time.perf_counter()
        try:
            hits = deps.index.search_columns(deps.alias, vector, request.k, filters)
        except NewsrecError:
            raise
        except Exception as exc:  # pymilvus / connection errors: the index is unavailable
            log.warning("index search failed", exc_info=True)
            raise Unavailable(f"vector index unavailable: {type(exc).__name__}") from exc
        self.metrics.search_seconds.labels(variant=self.variant).observe(time.perf_counter() - start)
        check_scores(hits.scores, "the vector index")
        # Columns, each copied into the message in one C call: a few hundred hits per call
        # made building one sub-message per candidate the process's main cost.
        response = retrieval_pb2.RetrieveResponse(
            model_version=deps.model.model_version,
            news_ids=hits.news_ids,
            scores=hits.scores,
            titles=deps.catalog.titles(hits.news_ids),
            categories=hits.categories,
            subcategories=hits.subcategories,
            published_at=hits.published_at,
        )
        # Milvus failing behind a mirror: the hits come from its last copy; say so.
        if deps.staleness is not None and deps.staleness(deps.alias) is not None:
            response.degraded_reasons.append(INDEX_STALE)
        return response


def _categories(values: Sequence[str]) -> tuple[str, ...]:
    """`filters.categories`, checked: a bounded list of non-blank names."""
    if len(values) > MAX_CATEGORIES:
        raise InvalidInput(f"filters.categories: at most {MAX_CATEGORIES} categories, got {len(values)}")
    out = tuple(values)
    for i, name in enumerate(out):
        if not name.strip() or len(name) > MAX_ID_LEN:
            raise InvalidInput(f"filters.categories[{i}]: must be 1..{MAX_ID_LEN} non-blank characters")
        check_no_control(name, f"filters.categories[{i}]")
    return out


class NewsServicer(_Base, news_pb2_grpc.NewsServiceServicer):
    def UpsertNews(
        self, request: news_pb2.UpsertNewsRequest, context: grpc.ServicerContext
    ) -> news_pb2.UpsertNewsResponse:
        deps = self._deps()
        article = _article(request)
        if deps.provider is None:
            raise Unavailable("no text embedding provider configured: cold-start upserts are disabled")
        text_vec = _embed(deps.provider, article)
        vector = np.asarray(deps.model.encode_news(article, text_vec), dtype=np.float32)
        if vector.shape != (deps.model.dim,) or not np.isfinite(vector).all():
            raise NonFiniteResult("the news encoder produced a non-finite vector; nothing was written")
        published = request.published_at if request.HasField("published_at") else int(time.time())
        stored = _stored(article, published, deps.model.model_version, vector, text_vec)
        stored.fields()  # a record too large to store is refused before anything is written
        record = NewsRecord(
            news_id=article.news_id,
            vector=vector,
            category=article.category,
            subcategory=article.subcategory,
            published_at=published,
            model_version=deps.model.model_version,
        )
        try:
            # The article in full first, then its vector: a vector is never searchable
            # without the content a restart needs to show and rank it. Both are durable
            # (in Milvus) before the call is acknowledged.
            if deps.store is not None:
                deps.store.put_articles(deps.alias, [stored])
            deps.index.upsert(deps.alias, [record])
            collection = deps.index.resolve_alias(deps.alias)
        except NewsrecError:
            raise
        except Exception as exc:
            log.warning("index upsert failed", exc_info=True)
            raise Unavailable(f"vector index unavailable: {type(exc).__name__}") from exc
        remember_upsert(deps.model, deps.catalog, deps.upserted, stored)
        self.metrics.news_upserts.labels(variant=self.variant).inc()
        self.refresh_size()
        log.info("news upserted", extra={"news_id": article.news_id, "collection": collection})
        return news_pb2.UpsertNewsResponse(
            news_id=article.news_id,
            model_version=deps.model.model_version,
            collection=collection,
            dim=vector.size,
        )

    def GetNews(
        self, request: news_pb2.GetNewsRequest, context: grpc.ServicerContext
    ) -> news_pb2.GetNewsResponse:
        deps = self._deps()
        version = deps.model.model_version
        if request.model_version and request.model_version != version:
            raise InvalidInput(
                f"model_version: this server serves {version!r}, not {request.model_version!r}"
            )
        ids = check_ids(request.news_ids, "news_ids", MAX_K)
        found = [deps.upserted[i] for i in dict.fromkeys(ids) if i in deps.upserted]
        return news_pb2.GetNewsResponse(articles=[_stored_pb(a) for a in found], model_version=version)


def remember_upsert(
    model: ServingModel, catalog: NewsCatalog, upserted: dict[str, StoredArticle], stored: StoredArticle
) -> None:
    """Make an upserted article known in memory: the model scores it from its content (an
    in-process ranker shares this model), the catalog shows its title, GetNews answers it."""
    first_seen = datetime.fromtimestamp(stored.published_at, tz=UTC)
    article = stored.article()
    model.add_news(article, stored.vector, first_seen, stored.text_vector)
    catalog.add(
        NewsInfo(article.news_id, article.title, article.category, article.subcategory, stored.published_at)
    )
    upserted[article.news_id] = stored


def _stored(
    article: NewsArticle, published: int, version: str, vector: np.ndarray, text_vec: np.ndarray
) -> StoredArticle:
    return StoredArticle(
        news_id=article.news_id,
        title=article.title,
        abstract=article.abstract,
        category=article.category,
        subcategory=article.subcategory,
        entities=tuple((e.wikidata_id, e.label, e.type, e.confidence) for e in article.title_entities),
        published_at=published,
        model_version=version,
        vector=vector,
        text_vector=np.asarray(text_vec, dtype=np.float32),
    )


def _stored_pb(a: StoredArticle) -> news_pb2.StoredNews:
    return news_pb2.StoredNews(
        news_id=a.news_id,
        title=a.title,
        abstract=a.abstract,
        category=a.category,
        subcategory=a.subcategory,
        entities=[
            news_pb2.NewsEntity(wikidata_id=w, label=la, type=t, confidence=c) for w, la, t, c in a.entities
        ],
        published_at=a.published_at,
        vector=a.vector.tolist(),
        text_vector=a.text_vector.tolist(),
    )


class ProviderRejected(NewsrecError):
    """The text embedding provider refused for good (bad key, unknown model, bad request):
    retrying will not help until its configuration is fixed."""

    grpc_code = "FAILED_PRECONDITION"


def _embed(provider: Any, article: NewsArticle) -> np.ndarray:
    """The article's text vector. A provider failure reaches the client as UNAVAILABLE
    (transient: retry) or FAILED_PRECONDITION (permanent), with a message naming only the
    kind of failure and the HTTP status: the provider's own text, which may echo request
    headers, stays in the server log (already redacted by the provider)."""
    try:
        vec = np.asarray(provider.embed([article.text()]).vectors[0], dtype=np.float32)
    except NewsrecError as exc:
        if _transient(exc):
            log.warning("text embedding provider unavailable", extra={"error": str(exc)})
            raise Unavailable(f"text embedding provider unavailable{_status(exc)}; retry later") from None
        log.error("text embedding provider refused the request", extra={"error": str(exc)})
        raise ProviderRejected(
            f"text embedding provider refused the request{_status(exc)}: check its configuration"
            " (credentials, model name) in the retrieval service"
        ) from None
    except Exception as exc:
        log.warning("text embedding provider failed", exc_info=True)
        raise Unavailable(f"text embedding provider failed ({type(exc).__name__}); retry later") from None
    if not np.isfinite(vec).all():
        raise Unavailable("text embedding provider returned a non-finite vector; retry later")
    return vec


def _transient(exc: NewsrecError) -> bool:
    """A failure a retry may fix: UNAVAILABLE itself, retries given up on one (the
    provider's final error wraps it), or a retryable HTTP status (429, 5xx)."""
    from newsrec.embed.retry import is_retryable_status

    status = getattr(exc, "status", None)
    return (
        isinstance(exc, Unavailable)
        or isinstance(exc.__cause__, Unavailable)
        or (isinstance(status, int) and is_retryable_status(status))
    )


def _status(exc: Exception) -> str:
    status = getattr(exc, "status", None)
    return f" (HTTP {int(status)})" if isinstance(status, int) else ""


def _article(request: news_pb2.UpsertNewsRequest) -> NewsArticle:
    """The request as an article, every field checked before anything is written."""
    if not request.news_id.strip():
        raise InvalidInput(f"news_id: must be 1..{MAX_ID_LEN} non-blank characters")
    check_key(request.news_id, "news_id")
    if "'" in request.news_id:  # Milvus Lite's upsert splices the id unescaped into its delete
        raise InvalidInput("news_id: must not contain ' (the vector index cannot upsert it)")
    if not request.title.strip():
        raise InvalidInput("title: must not be empty")
    for name in ("title", "abstract"):
        if len(getattr(request, name)) > MAX_TEXT:
            raise InvalidInput(f"{name}: at most {MAX_TEXT} characters")
        check_no_control(getattr(request, name), name)
    check_key(request.category, "category")
    check_key(request.subcategory, "subcategory", required=False)
    if request.HasField("published_at") and not 0 <= request.published_at < MAX_PUBLISHED_AT:
        raise InvalidInput(
            f"published_at: must be between 0 and {MAX_PUBLISHED_AT} (1970..3000 in unix seconds),"
            f" got {request.published_at}"
        )
    if len(request.entities) > MAX_ENTITIES:
        raise InvalidInput(f"entities: at most {MAX_ENTITIES} entities, got {len(request.entities)}")
    entities = []
    for i, ent in enumerate(request.entities):
        check_key(ent.wikidata_id, f"entities[{i}].wikidata_id")
        for name in ("label", "type"):
            if len(getattr(ent, name)) > MAX_ID_LEN:
                raise InvalidInput(f"entities[{i}].{name}: at most {MAX_ID_LEN} characters")
            check_no_control(getattr(ent, name), f"entities[{i}].{name}")
        entities.append(Entity(ent.wikidata_id, ent.label, ent.type, ent.confidence or 1.0))
    return NewsArticle(
        news_id=request.news_id,
        category=request.category,
        subcategory=request.subcategory,
        title=request.title,
        abstract=request.abstract,
        title_entities=entities,
    )


def create_server(
    config: ServeConfig,
    deps: RetrievalDeps | Callable[[], RetrievalDeps],
    registry: CollectorRegistry | None = None,
    start_metrics: bool = True,
) -> tuple[NewsrecServer, int]:
    """Serve RetrievalService and NewsService; `deps` may be a loader."""
    registry = registry or CollectorRegistry()
    metrics = RetrievalMetrics.of(registry)
    retrieval = RetrievalServicer(config.variant, metrics)
    news = NewsServicer(config.variant, metrics)

    def load() -> None:
        loaded = deps() if callable(deps) else deps
        retrieval.deps = news.deps = loaded
        retrieval.refresh_size()
        retrieval.watch_source()

    bindings = [
        ServiceBinding(
            full_name(retrieval_pb2.DESCRIPTOR, "RetrievalService"),
            retrieval_pb2_grpc.add_RetrievalServiceServicer_to_server,
            retrieval,
            metrics.request_seconds,
        ),
        ServiceBinding(
            full_name(news_pb2.DESCRIPTOR, "NewsService"),
            news_pb2_grpc.add_NewsServiceServicer_to_server,
            news,
            metrics.news_request_seconds,
        ),
    ]
    return start_server(config, bindings, registry, loader=load, start_metrics=start_metrics)
