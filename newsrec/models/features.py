"""Per-article feature arrays shared by training, evaluation and serving export.

Row 0 of every array is padding (used for short histories); an article's row is
`features.row[news_id]`. ID rows: articles that appear in the train behaviors get
their own ID embedding row (1..K); every other article maps to row 0, the
unknown-id vector.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np

from newsrec.data.types import MindSplit, NewsArticle
from newsrec.embed.store import EmbeddingTable
from newsrec.kg.graph import KnowledgeGraph

PAD = "<pad>"


@dataclass
class NewsFeatures:
    ids: list[str]
    id_rows: np.ndarray  # (N,) int64, 0 = unknown id
    text: np.ndarray  # (N, d_text) float32, zeros when an article has no embedding
    ent_idx: np.ndarray  # (N, M) int64 entity rows, -1 padding
    category: np.ndarray  # (N,) int64 index into `categories` (0 = unknown)
    categories: list[str]
    popularity: np.ndarray  # (N,) float32 click counts in train behaviors
    first_seen: np.ndarray  # (N,) float64 epoch seconds, nan when never seen
    known: np.ndarray  # (N,) bool: appears in train behaviors (has an own ID row)
    num_id_rows: int
    missing_text: int = 0
    # Display metadata carried into the serving artifact ("" for ids only seen in behaviors).
    titles: list[str] = field(default_factory=list)
    subcategories: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.row = {n: i for i, n in enumerate(self.ids)}

    def rows(self, news_ids: list[str]) -> np.ndarray:
        """Rows of `news_ids`; unknown ids map to 0 (padding)."""
        return np.array([self.row.get(n, 0) for n in news_ids], dtype=np.int64)


def train_clicks(train: MindSplit) -> dict[str, int]:
    """Click counts per news id over the train impressions."""
    out: dict[str, int] = {}
    for imp in train.impressions:
        for c, y in zip(imp.candidates, imp.labels, strict=False):
            if y:
                out[c] = out.get(c, 0) + 1
    return out


def build_features(
    splits: Mapping[str, MindSplit],
    embeddings: EmbeddingTable | None,
    graph: KnowledgeGraph | None,
    first_seen: Mapping[str, datetime],
    max_entities: int = 8,
) -> NewsFeatures:
    """Features for every article of every split plus ids only seen in behaviors."""
    news: dict[str, NewsArticle] = {}
    for split in splits.values():
        news.update(split.news)
    ids = [PAD, *news]
    seen = set(news)
    for split in splits.values():
        for imp in split.impressions:
            for nid in (*imp.history, *imp.candidates):
                if nid not in seen:
                    seen.add(nid)
                    ids.append(nid)
    n = len(ids)
    train = splits.get("train")
    known_ids: set[str] = set()
    if train is not None:
        for imp in train.impressions:
            known_ids.update(imp.history)
            known_ids.update(imp.candidates)
    id_rows = np.zeros(n, dtype=np.int64)
    known = np.zeros(n, dtype=bool)
    k = 0
    for i, nid in enumerate(ids[1:], start=1):
        if nid in known_ids:
            k += 1
            id_rows[i] = k
            known[i] = True
    d_text = embeddings.dim if embeddings is not None else 1
    text = np.zeros((n, d_text), dtype=np.float32)
    missing = 0
    if embeddings is not None:
        for i, nid in enumerate(ids[1:], start=1):
            r = embeddings.row(nid)
            if r is None:
                missing += 1
            else:
                text[i] = embeddings.vectors[r]
    ent_idx = np.full((n, max_entities), -1, dtype=np.int64)
    if graph is not None:
        for i, nid in enumerate(ids[1:], start=1):
            art = news.get(nid)
            ents = graph.news_entities.get(nid) or (art.entity_ids() if art else [])
            rows = graph.entity_rows(ents, max_entities)
            ent_idx[i, : len(rows)] = rows
    categories = ["<unk>", *sorted({a.category for a in news.values()})]
    cat_row = {c: i for i, c in enumerate(categories)}
    category = np.array(
        [0] + [cat_row[news[x].category] if x in news else 0 for x in ids[1:]], dtype=np.int64
    )
    clicks = train_clicks(train) if train is not None else {}
    popularity = np.array([clicks.get(x, 0) for x in ids], dtype=np.float32)
    fs = np.array([first_seen[x].timestamp() if x in first_seen else np.nan for x in ids], dtype=np.float64)
    titles = [news[x].title if x in news else "" for x in ids]
    subcategories = [news[x].subcategory if x in news else "" for x in ids]
    return NewsFeatures(
        ids,
        id_rows,
        text,
        ent_idx,
        category,
        categories,
        popularity,
        fs,
        known,
        k + 1,
        missing,
        titles,
        subcategories,
    )
