"""Turn a trained model's news vectors plus the dataset's metadata into index rows."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from newsrec.data.types import MindSplit, NewsArticle
from newsrec.errors import DataError
from newsrec.index.base import NewsRecord


def news_records(
    news_ids: Sequence[str],
    vectors: np.ndarray,
    splits: Mapping[str, MindSplit],
    model_version: str,
) -> list[NewsRecord]:
    """One record per news id: category/subcategory from news.tsv, publish time = first seen.

    MIND has no publish time; `newsrec.data.first_seen` (earliest impression time) stands
    in, and an article never seen in any behaviors.tsv gets 0 (oldest possible).
    """
    from newsrec.data import first_seen

    if vectors.shape[0] != len(news_ids):
        raise DataError(f"{len(news_ids)} news ids but {vectors.shape[0]} vectors")
    articles: dict[str, NewsArticle] = {}
    for split in splits.values():
        for nid, article in split.news.items():
            articles.setdefault(nid, article)
    seen = first_seen(splits)
    out = []
    for i, nid in enumerate(news_ids):
        art = articles.get(nid)
        t = seen.get(nid)
        out.append(
            NewsRecord(
                news_id=nid,
                vector=np.asarray(vectors[i], dtype=np.float32),
                category=art.category if art else "",
                subcategory=art.subcategory if art else "",
                published_at=int(t.timestamp()) if t else 0,
                model_version=model_version,
            )
        )
    return out
