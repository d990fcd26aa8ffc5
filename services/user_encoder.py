"""UserEncoderService: click history -> user vector, cached per model version + history."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import grpc
from prometheus_client import CollectorRegistry

from newsrec.errors import InvalidInput, Unavailable
from newsrec.models.serving import ServingModel
from services.cache import VectorCache, cache_key
from services.config import MAX_HISTORY, ServeConfig
from services.generated.newsrec.v1 import user_encoder_pb2, user_encoder_pb2_grpc
from services.metrics import UserEncoderMetrics
from services.server import NewsrecServer, ServiceBinding, full_name, start_server
from services.validation import check_ids, check_user_id

log = logging.getLogger("services.user_encoder")
CACHE_UNAVAILABLE = "cache_unavailable"


@dataclass
class UserEncoderDeps:
    model: ServingModel
    cache: VectorCache


class UserEncoderServicer(user_encoder_pb2_grpc.UserEncoderServiceServicer):
    def __init__(self, variant: str, metrics: UserEncoderMetrics) -> None:
        self.variant = variant
        self.metrics = metrics
        self.deps: UserEncoderDeps | None = None
        self._known: frozenset[str] = frozenset()

    def attach(self, deps: UserEncoderDeps) -> None:
        """Start answering with `deps` (called once loading is done)."""
        self._known = frozenset(deps.model.news_ids())
        self.deps = deps

    def EncodeUser(
        self, request: user_encoder_pb2.EncodeUserRequest, context: grpc.ServicerContext
    ) -> user_encoder_pb2.EncodeUserResponse:
        deps = self.deps
        if deps is None:
            raise Unavailable("user encoder is still loading its model")
        check_user_id(request.user_id)
        # Each field checked on its own, so a bad entry is named by its own field and index.
        history = check_ids(request.history_ids, "history_ids", MAX_HISTORY)
        if request.recent_clicks:
            history += check_ids(request.recent_clicks, "recent_clicks", MAX_HISTORY)
            if len(history) > MAX_HISTORY:
                raise InvalidInput(
                    f"history_ids+recent_clicks: at most {MAX_HISTORY} ids together, got {len(history)}"
                )
        version = deps.model.model_version
        if request.model_version and request.model_version != version:
            raise InvalidInput(
                f"model_version: this server serves {version!r}, not {request.model_version!r}"
            )
        key = cache_key(version, request.user_id, history)
        reasons: list[str] = []
        cached = None
        try:
            cached = deps.cache.get(key)
            self.metrics.record_lookup(self.variant, "hit" if cached is not None else "miss")
        except Unavailable as exc:
            self.metrics.record_lookup(self.variant, "error")
            reasons.append(CACHE_UNAVAILABLE)
            log.warning("cache get failed; computing without cache", extra={"error": str(exc)})
        if cached is not None and cached.shape == (deps.model.dim,):
            # The unknown count is not cached; recount it cheaply from the id set.
            return user_encoder_pb2.EncodeUserResponse(
                vector=cached.tolist(),
                model_version=version,
                cache_hit=True,
                unknown_history_count=sum(1 for n in history if n not in self._known),
            )
        start = time.perf_counter()
        vector, unknown = deps.model.encode_user(history)
        self.metrics.encode_seconds.labels(variant=self.variant).observe(time.perf_counter() - start)
        if unknown:
            self.metrics.unknown_history.labels(variant=self.variant).inc(unknown)
        if not reasons:
            try:
                deps.cache.set(key, vector)
            except Unavailable as exc:
                reasons.append(CACHE_UNAVAILABLE)
                log.warning("cache set failed", extra={"error": str(exc)})
        return user_encoder_pb2.EncodeUserResponse(
            vector=vector.tolist(),
            model_version=version,
            cache_hit=False,
            unknown_history_count=int(unknown),
            degraded=bool(reasons),
            degraded_reasons=reasons,
        )


def create_server(
    config: ServeConfig,
    deps: UserEncoderDeps | Callable[[], UserEncoderDeps],
    registry: CollectorRegistry | None = None,
    start_metrics: bool = True,
) -> tuple[NewsrecServer, int]:
    """Serve UserEncoderService; `deps` may be a loader (health turns SERVING after it returns)."""
    registry = registry or CollectorRegistry()
    metrics = UserEncoderMetrics.of(registry)
    servicer = UserEncoderServicer(config.variant, metrics)

    def load() -> None:
        loaded = deps() if callable(deps) else deps
        loaded.model.encode_user(loaded.model.news_ids()[:20])  # warm-up: first numpy call is slow
        servicer.attach(loaded)

    binding = ServiceBinding(
        full_name(user_encoder_pb2.DESCRIPTOR, "UserEncoderService"),
        user_encoder_pb2_grpc.add_UserEncoderServiceServicer_to_server,
        servicer,
        metrics.request_seconds,
    )
    return start_server(config, [binding], registry, loader=load, start_metrics=start_metrics)
