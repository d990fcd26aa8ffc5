"""RankingService: the fusion ranker scores every candidate in one batched call.

Duplicate candidate ids are scored once (the first occurrence is kept); every score
must be finite, else the call fails rather than answer NaN."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import grpc
import numpy as np
from prometheus_client import CollectorRegistry

from newsrec.errors import Unavailable
from newsrec.models.serving import ServingModel
from services.config import MAX_HISTORY, MAX_K, ServeConfig
from services.generated.newsrec.v1 import ranking_pb2, ranking_pb2_grpc
from services.metrics import RankerMetrics
from services.server import NewsrecServer, ServiceBinding, full_name, start_server
from services.validation import check_ids, check_scores, check_user_id, check_vector

if TYPE_CHECKING:
    from services.news_lookup import UpsertedNewsLookup

log = logging.getLogger("services.ranker")


@dataclass
class RankerDeps:
    model: ServingModel
    # Split mode: learns upserted articles from retrieval (None: the model knows them already,
    # as in `serve --all`, or no news source is configured).
    lookup: UpsertedNewsLookup | None = None


class RankingServicer(ranking_pb2_grpc.RankingServiceServicer):
    def __init__(self, variant: str, metrics: RankerMetrics) -> None:
        self.variant = variant
        self.metrics = metrics
        self.deps: RankerDeps | None = None

    def Rank(
        self, request: ranking_pb2.RankRequest, context: grpc.ServicerContext
    ) -> ranking_pb2.RankResponse:
        deps = self.deps
        if deps is None:
            raise Unavailable("ranker is still loading its model")
        check_user_id(request.user_id)
        user_vector = check_vector(request.user_vector, deps.model.dim, "user_vector")
        history = check_ids(request.history_ids, "history_ids", MAX_HISTORY)
        # Duplicates are scored once, at their first position: 50 copies of one id would
        # otherwise come back as 50 rows and crowd out every other candidate.
        candidates = list(dict.fromkeys(check_ids(request.candidate_ids, "candidate_ids", MAX_K)))
        self.metrics.candidates.labels(variant=self.variant).observe(len(candidates))
        if not candidates:
            return ranking_pb2.RankResponse(model_version=deps.model.model_version)
        if deps.lookup is not None:  # upserted articles: scored from their content, not as unknown
            deps.lookup.ensure([*candidates, *history], context.time_remaining())
        scores = np.asarray(deps.model.rank(user_vector, history, candidates), dtype=np.float32)
        check_scores(scores, "the ranker")
        order = np.argsort(-scores, kind="stable")
        if request.top_k:
            order = order[: request.top_k]
        return ranking_pb2.RankResponse(
            candidates=[
                ranking_pb2.ScoredCandidate(news_id=candidates[i], score=float(scores[i])) for i in order
            ],
            model_version=deps.model.model_version,
        )


def create_server(
    config: ServeConfig,
    deps: RankerDeps | Callable[[], RankerDeps],
    registry: CollectorRegistry | None = None,
    start_metrics: bool = True,
) -> tuple[NewsrecServer, int]:
    """Serve RankingService; `deps` may be a loader."""
    registry = registry or CollectorRegistry()
    metrics = RankerMetrics.of(registry)
    servicer = RankingServicer(config.variant, metrics)

    def load() -> None:
        loaded = deps() if callable(deps) else deps
        if loaded.lookup is not None:
            loaded.lookup.metrics, loaded.lookup.variant = metrics, config.variant
        try:  # warm-up: the first call pays ~50 ms of numpy setup
            ids = loaded.model.news_ids()
            user, _ = loaded.model.encode_user(ids[:20])
            loaded.model.rank(user, ids[:20], ids[:200])
        except Exception:
            log.warning("ranker warm-up failed", exc_info=True)
        servicer.deps = loaded

    binding = ServiceBinding(
        full_name(ranking_pb2.DESCRIPTOR, "RankingService"),
        ranking_pb2_grpc.add_RankingServiceServicer_to_server,
        servicer,
        metrics.request_seconds,
    )
    return start_server(config, [binding], registry, loader=load, start_metrics=start_metrics)
