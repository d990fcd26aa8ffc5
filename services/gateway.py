"""RecommendService: EncodeUser -> Retrieve (top-N, history excluded) -> Rank -> top-k.

Each stage has its own deadline (config), bounded by what is left of the client's.
A failing stage degrades the answer instead of failing it: a user encoder or retrieval
that is down gives the precomputed popular-and-fresh list, a ranker that is down gives
retrieval order, a cache that is down is reported by the encoder and a stale index copy
by retrieval (their reasons are copied). A stage that refuses the request (e.g. a
pinned version it does not serve) is `<stage>_rejected`, one that fails to answer
`<stage>_unavailable`. Every fallback sets `degraded`, names a reason and counts
`newsrec_gateway_degraded_total{variant,reason}`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import grpc
from prometheus_client import CollectorRegistry

from newsrec.errors import InvalidInput, Unavailable
from newsrec.models.serving import ServingModel
from services import ab, security
from services.cache import VectorCache
from services.catalog import NewsCatalog, NewsInfo, popular_fresh
from services.config import MAX_HISTORY, MAX_K, GatewayConfig, ReconnectConfig, ServeConfig, VariantConfig
from services.feedback import Feedback, feedback_for
from services.generated.newsrec.v1 import (
    common_pb2,
    ranking_pb2,
    ranking_pb2_grpc,
    recommend_pb2,
    recommend_pb2_grpc,
    retrieval_pb2,
    retrieval_pb2_grpc,
    user_encoder_pb2,
    user_encoder_pb2_grpc,
)
from services.interceptors import set_call_variant
from services.lookaside import UserVectorLookaside, lookaside_for
from services.metrics import GatewayMetrics
from services.server import NewsrecServer, ServiceBinding, full_name, start_server
from services.validation import check_ids, check_k, check_user_id

log = logging.getLogger("services.gateway")
# Time kept back from the client's deadline for the gateway's own work after the stages
# (fallback, serialisation): 5% of what is left, at least 5 ms.
DEADLINE_MARGIN_MIN = 0.005
DEADLINE_MARGIN_FRACTION = 0.05
CHANNEL_OPTIONS = [("grpc.lb_policy_name", "round_robin"), ("grpc.enable_retries", 0)]


def channel_options(reconnect: ReconnectConfig) -> list[tuple[str, Any]]:
    """CHANNEL_OPTIONS plus the configured reconnect back-off (bounded: see ReconnectConfig)."""
    return [
        *CHANNEL_OPTIONS,
        ("grpc.initial_reconnect_backoff_ms", reconnect.initial_backoff_ms),
        ("grpc.max_reconnect_backoff_ms", reconnect.max_backoff_ms),
        ("grpc.min_reconnect_backoff_ms", reconnect.connect_timeout_ms),
    ]


@dataclass
class VariantBackend:
    """Stubs of one variant's services, plus its fallback list."""

    config: VariantConfig
    # gRPC stubs, or objects with the same methods (services.inprocess, `serve --all`)
    encoder: Any
    retrieval: Any
    ranker: Any
    fallback: list[tuple[NewsInfo, float]] = field(default_factory=list)
    channels: list[grpc.Channel] = field(default_factory=list)
    # The encoder's cache, read before calling it (pinned versions only; see services.lookaside).
    user_cache: UserVectorLookaside | None = None

    @classmethod
    def connect(
        cls,
        config: VariantConfig,
        fallback: list[tuple[NewsInfo, float]],
        user_cache: UserVectorLookaside | None = None,
        make_channel: Callable[[str, Sequence[tuple[str, Any]]], grpc.Channel] | None = None,
        options: Sequence[tuple[str, Any]] | None = None,
    ) -> VariantBackend:
        """Dial the variant's three services; `make_channel(target, options)` adds TLS and
        the token (services.security.channel_factory), else plaintext. `options` default to
        CHANNEL_OPTIONS with the default reconnect back-off."""
        make = make_channel or (lambda target, options: grpc.insecure_channel(target, options=options))
        opts = list(options) if options is not None else channel_options(ReconnectConfig.model_validate({}))
        channels = [make(t, opts) for t in (config.user_encoder, config.retrieval, config.ranker)]
        return cls(
            config,
            user_encoder_pb2_grpc.UserEncoderServiceStub(channels[0]),
            retrieval_pb2_grpc.RetrievalServiceStub(channels[1]),
            ranking_pb2_grpc.RankingServiceStub(channels[2]),
            fallback,
            channels,
            user_cache,
        )

    def close(self) -> None:
        for ch in self.channels:
            ch.close()


@dataclass
class GatewayDeps:
    backends: dict[str, VariantBackend]


def fallback_for(section: GatewayConfig, catalog: NewsCatalog) -> list[tuple[NewsInfo, float]]:
    """The popular-and-fresh list a variant answers with when its encoder or retrieval fails."""
    return popular_fresh(catalog, section.fallback_size, section.freshness_half_life_hours)


def backend_for(
    config: ServeConfig,
    variant: VariantConfig,
    model: ServingModel | None,
    catalog: NewsCatalog,
    cache: VectorCache | None,
) -> VariantBackend:
    """One variant's backend over gRPC: its fallback list and, when the model is known and
    a cache is shared with its encoder, the look-aside into that cache. The one place
    both run modes (`serve --all`, one process per service) wire a variant."""
    section = config.gateway
    lookaside = None
    if model is not None:
        lookaside = lookaside_for(section.user_cache_lookaside, variant.model_version, cache, model)
    make_channel = security.channel_factory(config)
    options = channel_options(section.reconnect)
    return VariantBackend.connect(variant, fallback_for(section, catalog), lookaside, make_channel, options)


# Codes by which a stage refuses the gateway's request rather than fails to answer it: a
# misconfiguration (version pinned wrongly, auth token, a broken contract), never fixed by
# a retry, so reported as `<stage>_rejected` and logged as an error, not `<stage>_unavailable`.
REJECTED_CODES = frozenset(
    {
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.FAILED_PRECONDITION,
        grpc.StatusCode.OUT_OF_RANGE,
        grpc.StatusCode.UNAUTHENTICATED,
        grpc.StatusCode.PERMISSION_DENIED,
        grpc.StatusCode.UNIMPLEMENTED,
    }
)


def stage_reason(stage: str, error: grpc.RpcError) -> str:
    """The degraded reason of a failed stage call: `<stage>_rejected` or `<stage>_unavailable`."""
    return f"{stage}_rejected" if error.code() in REJECTED_CODES else f"{stage}_unavailable"


class _Call:
    """Deadline bookkeeping and stage timings of one Recommend call."""

    def __init__(self, context: grpc.ServicerContext, metrics: GatewayMetrics, variant: str) -> None:
        remaining = context.time_remaining()
        if remaining is None:
            self.deadline = None
        else:
            margin = max(DEADLINE_MARGIN_MIN, DEADLINE_MARGIN_FRACTION * remaining)
            self.deadline = time.monotonic() + remaining - margin
        self.metrics = metrics
        self.variant = variant
        self.latencies: list[recommend_pb2.StageLatency] = []
        self.reasons: list[str] = []

    def timeout(self, stage_timeout: float) -> float:
        if self.deadline is None:
            return stage_timeout
        return max(0.0, min(stage_timeout, self.deadline - time.monotonic()))

    def timed(self, stage: str, seconds: float) -> None:
        self.latencies.append(recommend_pb2.StageLatency(stage=stage, seconds=seconds))
        self.metrics.stage_seconds.labels(stage=stage, variant=self.variant).observe(seconds)

    def degrade(self, reason: str, error: grpc.RpcError | None = None) -> None:
        if reason not in self.reasons:
            self.reasons.append(reason)
            self.metrics.degraded.labels(variant=self.variant, reason=reason).inc()
        if error is not None:
            log.log(
                logging.ERROR if reason.endswith("_rejected") else logging.WARNING,
                "stage failed, degrading",
                extra={
                    "variant": self.variant,
                    "reason": reason,
                    "code": str(error.code()),
                    "detail": error.details(),
                },
            )


class RecommendServicer(recommend_pb2_grpc.RecommendServiceServicer):
    def __init__(self, config: GatewayConfig, metrics: GatewayMetrics) -> None:
        self.config = config
        self.metrics = metrics
        self.deps: GatewayDeps | None = None
        # The feedback loop (services/feedback.py); None: answers carry no request id.
        self.feedback: Feedback | None = None
        self._fallback_published: dict[str, dict[str, int]] = {}

    def _backend(self, request: recommend_pb2.RecommendRequest) -> VariantBackend:
        deps = self.deps
        if deps is None:
            raise Unavailable("gateway is still loading")
        if request.forced_variant:
            backend = deps.backends.get(request.forced_variant)
            if backend is None:
                known = ", ".join(sorted(deps.backends))
                wanted = request.forced_variant
                raise InvalidInput(f"forced_variant: unknown variant {wanted!r} (configured: {known})")
            self.metrics.variant_requests.labels(variant=backend.config.name, assignment="forced").inc()
            return backend
        chosen = ab.assign(self.config.variants, self.config.salt, request.user_id)
        self.metrics.variant_requests.labels(variant=chosen.name, assignment="hash").inc()
        return deps.backends[chosen.name]

    def Recommend(
        self, request: recommend_pb2.RecommendRequest, context: grpc.ServicerContext
    ) -> recommend_pb2.RecommendResponse:
        check_user_id(request.user_id)
        history = check_ids(request.history_ids, "history_ids", MAX_HISTORY)
        check_k(request.k)
        backend = self._backend(request)
        variant = backend.config.name
        set_call_variant(variant)
        call = _Call(context, self.metrics, variant)
        t_start = time.perf_counter()
        timeouts = self.config.timeouts
        model_version = backend.config.model_version
        unknown = 0
        cache_hit = False
        candidates = retrieval_pb2.RetrieveResponse()

        # 1. user vector: from the encoder's cache when the gateway may read it, else the encoder
        t0 = time.perf_counter()
        user_vector: list[float] | None = None
        cached = self._cached_user(backend, request.user_id, history)
        if cached is not None:
            user_vector, unknown = cached
            cache_hit, model_version = True, backend.config.model_version
        else:
            try:
                user = backend.encoder.EncodeUser(
                    user_encoder_pb2.EncodeUserRequest(
                        user_id=request.user_id, history_ids=history, model_version=model_version
                    ),
                    timeout=call.timeout(timeouts.encode_user),
                )
                for reason in user.degraded_reasons:
                    call.degrade(reason)
                user_vector = list(user.vector)
                unknown, cache_hit = user.unknown_history_count, user.cache_hit
                model_version = user.model_version
            except grpc.RpcError as exc:
                call.degrade(stage_reason("user_encoder", exc), exc)
        if user_vector is not None:
            self.metrics.unknown_history.labels(variant=variant).inc(unknown)
        call.timed("encode_user", time.perf_counter() - t0)

        # 2. candidates
        retrieved = False
        if user_vector is not None:
            t0 = time.perf_counter()
            try:
                got = backend.retrieval.Retrieve(
                    retrieval_pb2.RetrieveRequest(
                        vector=user_vector,
                        k=self.config.retrieve_k,
                        filters=common_pb2.RetrievalFilters(exclude_ids=history),
                    ),
                    timeout=call.timeout(timeouts.retrieve),
                )
                if len(got.scores) == len(got.titles) == len(got.categories) == len(got.news_ids):
                    candidates, retrieved = got, True
                    for reason in got.degraded_reasons:  # e.g. index_stale: a mirror's old copy
                        call.degrade(reason)
                else:  # a broken contract; answer from the fallback list rather than guess
                    log.error("retrieval answered columns of different lengths", extra={"variant": variant})
                    call.degrade("retrieval_unavailable")
            except grpc.RpcError as exc:
                call.degrade(stage_reason("retrieval", exc), exc)
            call.timed("retrieve", time.perf_counter() - t0)

        if retrieved and user_vector is not None:
            items = self._ranked(backend, call, request, user_vector, history, candidates)
        else:
            items = self._fallback(backend, history, request.k)
        call.timed("total", time.perf_counter() - t_start)
        published = candidates if retrieved else self._published_of_fallback(backend)
        request_id = self._record_served(request.user_id, variant, model_version, items, history, published)
        return recommend_pb2.RecommendResponse(
            items=items,
            variant=variant,
            model_version=model_version,
            degraded=bool(call.reasons),
            degraded_reasons=call.reasons,
            stage_latencies=call.latencies,
            unknown_history_count=unknown,
            cache_hit=cache_hit,
            request_id=request_id,
        )

    # --- the feedback loop (services/feedback.py): kept apart from the stages above ---

    def _record_served(
        self,
        user_id: str,
        variant: str,
        model_version: str,
        items: list[recommend_pb2.RecommendedItem],
        history: list[str],
        published: Any,
    ) -> str:
        """The answer's request id ("" without a feedback loop). One queue insert here;
        the record reaches Redis from a background thread."""
        feedback = self.feedback
        if feedback is None or not items:
            return ""
        return feedback.recorder.record(user_id, variant, model_version, items, history, published)

    def _published_of_fallback(self, backend: VariantBackend) -> dict[str, int] | None:
        """news id -> published_at of the variant's fallback list, built once (age histogram)."""
        if self.feedback is None:
            return None
        name = backend.config.name
        got = self._fallback_published.get(name)
        if got is None:
            got = self._fallback_published[name] = {i.news_id: i.published_at for i, _ in backend.fallback}
        return got

    def LogFeedback(
        self, request: recommend_pb2.LogFeedbackRequest, context: grpc.ServicerContext
    ) -> recommend_pb2.LogFeedbackResponse:
        feedback = self.feedback
        if feedback is None:
            raise Unavailable(
                "feedback: no feedback log configured (gateway.feedback.redis_url or cache.redis_url)"
            )
        answer = feedback.log.append(request, MAX_K)
        set_call_variant(answer.variant)
        return answer

    def _cached_user(
        self, backend: VariantBackend, user_id: str, history: list[str]
    ) -> tuple[list[float], int] | None:
        """(vector, unknown count) from the encoder's cache, or None (miss, no look-aside,
        or the cache is down: the encoder then computes and reports the cache itself)."""
        lookaside = backend.user_cache
        if lookaside is None:
            return None
        variant = backend.config.name
        try:
            got = lookaside.get(user_id, history)
        except Unavailable as exc:
            self.metrics.user_cache.labels(variant=variant, result="error").inc()
            log.warning("user cache read failed; asking the encoder", extra={"error": str(exc)})
            return None
        self.metrics.user_cache.labels(variant=variant, result="miss" if got is None else "hit").inc()
        return got

    def _ranked(
        self,
        backend: VariantBackend,
        call: _Call,
        request: recommend_pb2.RecommendRequest,
        user_vector: list[float],
        history: list[str],
        candidates: retrieval_pb2.RetrieveResponse,
    ) -> list[recommend_pb2.RecommendedItem]:
        ids = list(candidates.news_ids)
        position = dict(zip(ids, range(len(ids)), strict=True))
        t0 = time.perf_counter()
        try:
            ranked = backend.ranker.Rank(
                ranking_pb2.RankRequest(
                    user_id=request.user_id,
                    user_vector=user_vector,
                    history_ids=history,
                    candidate_ids=ids,
                    top_k=request.k,
                ),
                timeout=call.timeout(self.config.timeouts.rank),
            )
            order = [(position[s.news_id], s.score) for s in ranked.candidates if s.news_id in position]
        except grpc.RpcError as exc:
            call.degrade(stage_reason("ranker", exc), exc)
            order = list(zip(range(len(ids)), candidates.scores, strict=True))
        call.timed("rank", time.perf_counter() - t0)
        titles, categories = candidates.titles, candidates.categories
        return [
            recommend_pb2.RecommendedItem(
                news_id=ids[i], title=titles[i], category=categories[i], score=score
            )
            for i, score in order[: request.k]
        ]

    @staticmethod
    def _fallback(backend: VariantBackend, history: list[str], k: int) -> list[recommend_pb2.RecommendedItem]:
        seen = set(history)
        out = []
        for info, score in backend.fallback:
            if info.news_id in seen:
                continue
            out.append(
                recommend_pb2.RecommendedItem(
                    news_id=info.news_id, title=info.title, category=info.category, score=score
                )
            )
            if len(out) == k:
                break
        return out


def create_server(
    config: ServeConfig,
    deps: GatewayDeps | Callable[[], GatewayDeps],
    registry: CollectorRegistry | None = None,
    start_metrics: bool = True,
) -> tuple[NewsrecServer, int]:
    """Serve RecommendService; `deps` may be a loader (fallback lists are built there)."""
    if not config.gateway.variants:
        raise InvalidInput("gateway.variants: at least one variant is needed")
    registry = registry or CollectorRegistry()
    metrics = GatewayMetrics.of(registry)
    servicer = RecommendServicer(config.gateway, metrics)
    servicer.feedback = feedback_for(config, metrics)

    def load() -> None:
        loaded = deps() if callable(deps) else deps
        missing = {v.name for v in config.gateway.variants} - set(loaded.backends)
        if missing:
            raise InvalidInput(f"gateway: no backend for variants {sorted(missing)}")
        servicer.deps = loaded

    binding = ServiceBinding(
        full_name(recommend_pb2.DESCRIPTOR, "RecommendService"),
        recommend_pb2_grpc.add_RecommendServiceServicer_to_server,
        servicer,
        metrics.request_seconds,
    )
    server, port = start_server(config, [binding], registry, loader=load, start_metrics=start_metrics)
    if servicer.feedback is not None:
        server.closers.append(servicer.feedback.close)
    return server, port
