"""The gateway's read-only view of the user encoder's cache (cache-aside at the caller).

A cached user vector is keyed by model version, user and history, and the user encoder
is its only writer. When the gateway finds the key itself, the answer is the vector the
encoder would return, without the encoder's gRPC hop: about 1.5-2 ms of CPU and one
network round trip per Recommend on a 2-core host (docs/benchmarks/serving.md).
Only for variants whose model version is pinned in the config: an unpinned variant
cannot know which version its encoder serves, so it must ask it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from newsrec.models.serving import ServingModel
from services.cache import VectorCache, cache_key


@dataclass(frozen=True)
class UserVectorLookaside:
    cache: VectorCache
    model_version: str
    dim: int
    # News ids of the variant's model: the unknown-history count the encoder would report.
    known_ids: frozenset[str]

    def get(self, user_id: str, history: Sequence[str]) -> tuple[list[float], int] | None:
        """(vector, unknown history count) when the encoder has cached this user and
        history, else None. Raises `Unavailable` when the cache is down."""
        vector = self.cache.get(cache_key(self.model_version, user_id, history))
        if vector is None or vector.shape != (self.dim,):
            return None
        return vector.tolist(), sum(1 for news_id in history if news_id not in self.known_ids)


def lookaside_for(
    enabled: bool, model_version: str, cache: VectorCache | None, model: ServingModel
) -> UserVectorLookaside | None:
    """The look-aside of one variant, or None when it is off, the variant's version is
    not pinned, or there is no cache shared with its encoder."""
    if not enabled or not model_version or cache is None:
        return None
    return UserVectorLookaside(cache, model_version, model.dim, frozenset(model.news_ids()))
