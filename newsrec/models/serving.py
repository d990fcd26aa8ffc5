"""What the online services need from a trained model, independent of training code.

A registry version's `serving/` artifact directory is loaded into an object that
satisfies `ServingModel`; the services only use this protocol.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Protocol

import numpy as np

from newsrec.data.types import NewsArticle


class ServingModel(Protocol):
    model_version: str
    dim: int  # dimension of user and news vectors (inner-product space)

    def news_ids(self) -> list[str]:
        """Ids of the news with precomputed vectors, in row order of `news_vectors()`."""
        ...

    def news_vectors(self) -> np.ndarray:
        """(N, dim) float32 news-tower output for every known article."""
        ...

    def encode_user(self, history: Sequence[str]) -> tuple[np.ndarray, int]:
        """User vector (dim,) from click history (most recent last); unknown ids are
        skipped and their count returned."""
        ...

    def rank(
        self,
        user_vector: np.ndarray,
        history: Sequence[str],
        candidates: Sequence[str],
        now: datetime | float | None = None,
    ) -> np.ndarray:
        """Ranker scores (len(candidates),) in one batched forward pass. `now` (request
        time, for freshness) defaults to the artifact's data clock; unknown candidates
        score as articles with a zero vector and no metadata."""
        ...

    def encode_news(self, article: NewsArticle, text_vector: np.ndarray) -> np.ndarray:
        """News-tower vector for a new (cold-start) article from its text embedding and entities."""
        ...

    def add_news(
        self,
        article: NewsArticle,
        vector: np.ndarray,
        first_seen: datetime | None = None,
        text_vector: np.ndarray | None = None,
    ) -> None:
        """Register a cold-start article (vector from `encode_news`, `text_vector` the text
        embedding it came from) so `rank` scores it from its vector, category, entities,
        freshness and text, and `news_metadata` knows its title and subcategory."""
        ...

    def news_metadata(self, news_id: str) -> dict[str, Any] | None:
        """`{"title", "category", "subcategory", "entities", "popularity", "first_seen", "known"}`
        or None (title/subcategory are "" when the artifact predates them)."""
        ...
