"""Does the embedding separate topics? Nearest-neighbour category agreement."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

import numpy as np

from newsrec.data.types import NewsArticle
from newsrec.embed.store import EmbeddingTable
from newsrec.errors import InvalidInput


def neighbour_category_agreement(
    table: EmbeddingTable,
    news: Iterable[NewsArticle] | dict[str, NewsArticle],
    k: int = 10,
    queries: int | None = None,
    seed: int = 0,
) -> tuple[float, float]:
    """(agreement, chance): the share of each article's k nearest neighbours (cosine, self
    excluded) that have its category, averaged over articles; and the same share
    expected from neighbours drawn at random (sum over categories of p_c * (n_c-1)/(n-1)).
    `queries` averages over that many random articles instead of all of them (their
    neighbours still come from the whole table): the full table is quadratic."""
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
    query_rows = np.arange(n)
    if queries is not None and queries < n:
        query_rows = np.sort(np.random.default_rng(seed).choice(n, queries, replace=False))
    hits = 0
    for start in range(0, len(query_rows), 1024):  # blocks keep the similarity matrix small
        block = query_rows[start : start + 1024]
        sims = vecs[block] @ vecs.T
        sims[np.arange(len(block)), block] = -np.inf  # an article is not its own neighbour
        top = np.argpartition(-sims, k, axis=1)[:, :k]
        hits += int((labels[top] == labels[block, None]).sum())
    agreement = hits / (len(query_rows) * k)
    counts = Counter(labels.tolist())
    chance = sum(c * (c - 1) for c in counts.values()) / (n * (n - 1))
    return agreement, chance
