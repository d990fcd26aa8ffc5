"""Does the embedding separate topics? Nearest-neighbour category agreement."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

import numpy as np

from newsrec.data.types import NewsArticle
from newsrec.embed.store import EmbeddingTable
from newsrec.errors import InvalidInput


def neighbour_category_agreement(
    table: EmbeddingTable, news: Iterable[NewsArticle] | dict[str, NewsArticle], k: int = 10
) -> tuple[float, float]:
    """(agreement, chance): the share of each article's k nearest neighbours (cosine, self
    excluded) that have its category, averaged over articles; and the same share
    expected from neighbours drawn at random (sum over categories of p_c * (n_c-1)/(n-1))."""
    articles = news.values() if isinstance(news, dict) else news
    category = {a.news_id: a.category for a in articles}
    rows = [(table.row(nid), cat) for nid, cat in category.items() if table.row(nid) is not None]
    n = len(rows)
    if n <= k:
        raise InvalidInput(f"neighbour agreement needs more than k={k} embedded articles, got {n}")
    idx = np.array([r for r, _ in rows])
    labels = np.array([c for _, c in rows])
    vecs = table.vectors[idx].astype(np.float32)
    vecs /= np.maximum(np.linalg.norm(vecs, axis=1, keepdims=True), 1e-12)
    hits = 0
    for start in range(0, n, 1024):  # blocks keep the similarity matrix small
        sims = vecs[start : start + 1024] @ vecs.T
        for j in range(sims.shape[0]):
            sims[j, start + j] = -np.inf
        top = np.argpartition(-sims, k, axis=1)[:, :k]
        hits += int((labels[top] == labels[start : start + 1024, None]).sum())
    agreement = hits / (n * k)
    counts = Counter(labels.tolist())
    chance = sum(c * (c - 1) for c in counts.values()) / (n * (n - 1))
    return agreement, chance
