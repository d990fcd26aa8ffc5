"""Prometheus metrics, one set per service, each in the server's own CollectorRegistry.

Names are `newsrec_<service>_<thing>_<unit>`; labels are small fixed sets
(method, code, variant, and stage/reason/result where a service needs them).
A per-server registry lets several servers live in one process (tests, `serve --all`).

At server bootstrap (`start_at_zero`, called by services.server.start_server) the
`_created` series are turned off and every counter whose label values are known up
front gets its series at 0, so `rate()` and ratios read 0 instead of nothing before the
first event (an alert on an absent series never fires, a dashboard shows "No data").
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Iterable, Sequence
from typing import Self

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics

# Latency buckets in seconds: sub-millisecond to a few seconds.
LATENCY_BUCKETS = (
    0.0005,
    0.001,
    0.002,
    0.003,
    0.005,
    0.0075,
    0.01,
    0.015,
    0.02,
    0.03,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
)


# Every reason the gateway can count in newsrec_gateway_degraded_total: its own stage
# failures, plus those copied from the user encoder (cache) and retrieval (stale index).
DEGRADED_REASONS = (
    "user_encoder_unavailable",
    "retrieval_unavailable",
    "ranker_unavailable",
    "cache_unavailable",
    "index_stale",
    # a stage that refused the request (INVALID_ARGUMENT, FAILED_PRECONDITION...): a bug or
    # a version mismatch, not an outage (services/gateway.py `stage_reason`)
    "user_encoder_rejected",
    "retrieval_rejected",
    "ranker_rejected",
)
CACHE_RESULTS = ("hit", "miss", "error")
# Why LogFeedback refused an event (services/feedback.py); each answers INVALID_ARGUMENT.
FEEDBACK_REJECT_REASONS = (
    "missing_field",  # event_id, request_id or user_id empty, or neither shown nor clicked ids
    "bad_id",  # an id too long, or with a control character or whitespace
    "too_many_ids",
    "duplicate_id",  # the same news id twice in shown_ids or clicked_ids
    "unknown_request",  # request_id never served, or its record expired
    "wrong_user",  # user_id is not the user the list was served to
    "not_served",  # a shown id the gateway did not serve under request_id
    "not_shown",  # a clicked id not among the shown (or served) ids
    "bad_time",  # event_time before the list was served or in the future
)
FEEDBACK_RESULTS = ("accepted", "duplicate")
# The variant label of a refused event whose served list is not known (yet, or at all).
UNKNOWN_VARIANT = "unknown"
SERVED_DROP_REASONS = ("queue_full", "redis_error")
# Age of served articles (seconds): an hour to a month.
AGE_BUCKETS = (600, 1800, 3600, 3 * 3600, 6 * 3600, 12 * 3600, 86400, 2 * 86400, 7 * 86400, 30 * 86400)
ASSIGNMENTS = ("hash", "forced")

_INSTANCES: weakref.WeakKeyDictionary[CollectorRegistry, dict[type, ServiceMetrics]]
_INSTANCES = weakref.WeakKeyDictionary()
_LOCK = threading.Lock()


class ServiceMetrics:
    """The request histogram every service has.

    Use `Cls.of(registry)`: servers of several variants sharing one registry (one
    process, `serve --all`) share one set of metrics, told apart by the `variant` label.
    """

    @classmethod
    def of(cls, registry: CollectorRegistry) -> Self:
        with _LOCK:
            per_registry = _INSTANCES.setdefault(registry, {})
            if cls not in per_registry:
                per_registry[cls] = cls(registry)  # type: ignore[call-arg, arg-type]
            return per_registry[cls]  # type: ignore[return-value]

    def __init__(self, service: str, registry: CollectorRegistry) -> None:
        self.service = service
        self.registry = registry
        self.request_seconds = Histogram(
            f"newsrec_{service}_request_seconds",
            f"Latency of {service} RPCs",
            ("method", "code", "variant"),
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )

    def owns(self, histogram: Histogram | None) -> bool:
        """Whether `histogram` is one of this service's request histograms."""
        return histogram is self.request_seconds

    def start_at_zero(self, variants: Sequence[str]) -> None:
        """Create the known label sets of `variants` at 0 (subclasses list theirs)."""


def start_at_zero(
    registry: CollectorRegistry,
    histograms: Iterable[Histogram | None],
    variant: str,
    gateway_variants: Sequence[str],
) -> None:
    """Server bootstrap: `_created` series off, known series of the server's metrics at 0.

    Only the metrics sets owning one of the server's request `histograms` are touched, so
    a gateway sharing a registry with per-variant servers (`serve --all`) does not add
    series for its own config's `variant`. The gateway's series are per routed variant."""
    disable_created_metrics()  # process-wide; idempotent
    with _LOCK:
        instances = list(_INSTANCES.get(registry, {}).values())
    wanted = list(histograms)
    for metrics in instances:
        if any(metrics.owns(h) for h in wanted):
            own = gateway_variants if isinstance(metrics, GatewayMetrics) else [variant]
            metrics.start_at_zero(own)


class UserEncoderMetrics(ServiceMetrics):
    def __init__(self, registry: CollectorRegistry) -> None:
        super().__init__("user_encoder", registry)
        self.cache_requests = Counter(
            "newsrec_user_encoder_cache_requests_total",
            "User-vector cache lookups by result (hit, miss, error)",
            ("variant", "result"),
            registry=registry,
        )
        self.cache_hit_ratio = Gauge(
            "newsrec_user_encoder_cache_hit_ratio",
            "Hits over lookups since start (dashboards: rate() of cache_requests_total instead)",
            ("variant",),
            registry=registry,
        )
        self.unknown_history = Counter(
            "newsrec_user_encoder_unknown_history_total",
            "History ids the model does not know (skipped)",
            ("variant",),
            registry=registry,
        )
        self.encode_seconds = Histogram(
            "newsrec_user_encoder_compute_seconds",
            "Time in the user tower (cache misses)",
            ("variant",),
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self._hits: dict[str, int] = {}
        self._lookups: dict[str, int] = {}

    def record_lookup(self, variant: str, result: str) -> None:
        self.cache_requests.labels(variant=variant, result=result).inc()
        self._lookups[variant] = self._lookups.get(variant, 0) + 1
        self._hits[variant] = self._hits.get(variant, 0) + (result == "hit")
        self.cache_hit_ratio.labels(variant=variant).set(self._hits[variant] / self._lookups[variant])

    def start_at_zero(self, variants: Sequence[str]) -> None:
        for variant in variants:
            for result in CACHE_RESULTS:
                self.cache_requests.labels(variant=variant, result=result)
            self.unknown_history.labels(variant=variant)


class RetrievalMetrics(ServiceMetrics):
    def __init__(self, registry: CollectorRegistry) -> None:
        super().__init__("retrieval", registry)
        self.index_size = Gauge(
            "newsrec_retrieval_index_size", "Rows behind the served alias", ("variant",), registry=registry
        )
        # Set only for an index that reports its source's health (the in-memory mirror),
        # computed at scrape time.
        self.index_source_up = Gauge(
            "newsrec_retrieval_index_source_up",
            "1 while the index's source of truth (Milvus) answers, 0 while the mirror serves a stale copy",
            ("variant",),
            registry=registry,
        )
        self.index_stale_seconds = Gauge(
            "newsrec_retrieval_index_stale_seconds",
            "Seconds since Milvus last answered the mirror, while it is failing; 0 when healthy",
            ("variant",),
            registry=registry,
        )
        self.search_seconds = Histogram(
            "newsrec_retrieval_search_seconds",
            "Time in the vector index search",
            ("variant",),
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.news_upserts = Counter(
            "newsrec_news_upserts_total", "Articles written by UpsertNews", ("variant",), registry=registry
        )
        self.news_request_seconds = Histogram(
            "newsrec_news_request_seconds",
            "Latency of news RPCs",
            ("method", "code", "variant"),
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )

    def owns(self, histogram: Histogram | None) -> bool:
        return histogram is self.request_seconds or histogram is self.news_request_seconds

    def start_at_zero(self, variants: Sequence[str]) -> None:
        for variant in variants:
            self.news_upserts.labels(variant=variant)


class RankerMetrics(ServiceMetrics):
    def __init__(self, registry: CollectorRegistry) -> None:
        super().__init__("ranker", registry)
        self.candidates = Histogram(
            "newsrec_ranker_candidates",
            "Candidates scored per call",
            ("variant",),
            buckets=(1, 10, 50, 100, 200, 300, 500),
            registry=registry,
        )
        # Upserted articles asked of retrieval (services.news_lookup), by outcome:
        # found, missing (retrieval does not know the id), error (retrieval did not answer).
        self.news_lookups = Counter(
            "newsrec_ranker_news_lookups_total",
            "Candidate ids the ranker asked retrieval for",
            ("variant", "result"),
            registry=registry,
        )


class GatewayMetrics(ServiceMetrics):
    def __init__(self, registry: CollectorRegistry) -> None:
        super().__init__("gateway", registry)
        self.stage_seconds = Histogram(
            "newsrec_gateway_stage_seconds",
            "Latency of each Recommend stage as seen by the gateway",
            ("stage", "variant"),
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.degraded = Counter(
            "newsrec_gateway_degraded_total",
            "Recommend answers that took a fallback, by reason",
            ("variant", "reason"),
            registry=registry,
        )
        self.variant_requests = Counter(
            "newsrec_gateway_variant_requests_total",
            "Recommend calls per variant and how it was chosen (hash or forced)",
            ("variant", "assignment"),
            registry=registry,
        )
        self.user_cache = Counter(
            "newsrec_gateway_user_cache_total",
            "Gateway reads of the user encoder's cache before calling it (hit, miss, error)",
            ("variant", "result"),
            registry=registry,
        )
        self.unknown_history = Counter(
            "newsrec_gateway_unknown_history_total",
            "History ids unknown to the variant's model",
            ("variant",),
            registry=registry,
        )
        self._feedback(registry)

    def _feedback(self, registry: CollectorRegistry) -> None:
        """The feedback loop's metrics (services/feedback.py)."""
        self.impressions = Counter(
            "newsrec_gateway_impressions_total",
            "Items reported shown through LogFeedback (accepted events, retries not counted)",
            ("variant",),
            registry=registry,
        )
        self.clicks = Counter(
            "newsrec_gateway_clicks_total",
            "Items reported clicked through LogFeedback (accepted events, retries not counted)",
            ("variant",),
            registry=registry,
        )
        self.feedback_events = Counter(
            "newsrec_gateway_feedback_events_total",
            "LogFeedback events written (accepted) or recognised as a retry (duplicate)",
            ("variant", "result"),
            registry=registry,
        )
        self.feedback_rejected = Counter(
            "newsrec_gateway_feedback_rejected_total",
            "LogFeedback events refused with INVALID_ARGUMENT, never written, by reason "
            "(variant 'unknown' until the served list is found)",
            ("variant", "reason"),
            registry=registry,
        )
        self.served_dropped = Counter(
            "newsrec_gateway_served_records_dropped_total",
            "Served lists whose record was not stored (no feedback possible for them)",
            ("variant", "reason"),
            registry=registry,
        )
        self.served_distinct = Gauge(
            "newsrec_gateway_served_distinct_items",
            "Distinct articles served by this gateway in the last complete coverage window "
            "(the current one until the first closes): the catalogue's coverage",
            ("variant",),
            registry=registry,
        )
        self.served_age = Histogram(
            "newsrec_gateway_served_age_seconds",
            "Age of served articles at serving time (now - published_at), per item",
            ("variant",),
            buckets=AGE_BUCKETS,
            registry=registry,
        )

    def start_at_zero(self, variants: Sequence[str]) -> None:
        for variant in (*variants, UNKNOWN_VARIANT):
            for reason in FEEDBACK_REJECT_REASONS:
                self.feedback_rejected.labels(variant=variant, reason=reason)
        for variant in variants:
            self.impressions.labels(variant=variant)
            self.clicks.labels(variant=variant)
            self.served_distinct.labels(variant=variant)
            for result in FEEDBACK_RESULTS:
                self.feedback_events.labels(variant=variant, result=result)
            for reason in SERVED_DROP_REASONS:
                self.served_dropped.labels(variant=variant, reason=reason)
            for reason in DEGRADED_REASONS:
                self.degraded.labels(variant=variant, reason=reason)
            for assignment in ASSIGNMENTS:
                self.variant_requests.labels(variant=variant, assignment=assignment)
            for result in CACHE_RESULTS:
                self.user_cache.labels(variant=variant, result=result)
            self.unknown_history.labels(variant=variant)
