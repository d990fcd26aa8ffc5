"""The news–entity knowledge graph: entity vocabulary, article→entity lists and
weighted entity–entity co-occurrence edges, saved as safetensors + JSON.

Entities are the WikidataIds of an article's title and abstract entities. Two
entities are linked when they occur in the same article; the edge weight is the
number of such articles. The GNN uses the symmetric-normalised adjacency
D^-1/2 (A + I) D^-1/2 (GCN), built here as a torch sparse tensor.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from itertools import combinations
from pathlib import Path
from typing import Any

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field
from safetensors.numpy import load_file, save_file

from newsrec.data.types import MindSplit, NewsArticle
from newsrec.errors import DataError

GRAPH_FILE = "graph.safetensors"
META_FILE = "graph.json"


class KGConfig(BaseModel):
    """How the graph is built."""

    model_config = ConfigDict(extra="forbid")

    max_entities_per_article: int = Field(default=8, ge=1)
    min_edge_weight: int = Field(default=1, ge=1)  # drop rarer co-occurrence edges
    # Hubs: an entity in more than max(min_hub_articles, max_entity_share * articles)
    # articles ("United States" in real news) links everything to everything and says
    # nothing about one article; it is dropped before the per-article cap.
    max_entity_share: float = Field(default=0.01, gt=0.0, le=1.0)
    min_hub_articles: int = Field(default=50, ge=1)
    # Entities without a .vec row in fewer articles are dropped (2: a single-article
    # entity is a second ID embedding of that article; 1, the default, keeps them, since
    # a later article on the same story can still share it).
    min_entity_articles: int = Field(default=1, ge=1)
    splits: tuple[str, ...] = ("train", "dev", "test")  # whose news feed the graph


@dataclass
class KnowledgeGraph:
    """Entity vocabulary, per-article entity lists and co-occurrence edges.

    `entity_vectors` (E, d) holds `entity_embedding.vec` rows where `has_vector` is
    True (zeros elsewhere), or is None when no split shipped a .vec file.
    """

    entity_ids: list[str]
    news_entities: dict[str, list[str]]
    edges: np.ndarray  # (2, nnz) int64, both directions
    weights: np.ndarray  # (nnz,) float32
    entity_vectors: np.ndarray | None
    has_vector: np.ndarray  # (E,) bool

    def __post_init__(self) -> None:
        self.entity_row = {e: i for i, e in enumerate(self.entity_ids)}

    @property
    def num_entities(self) -> int:
        return len(self.entity_ids)

    def entity_rows(self, entity_ids: Iterable[str], cap: int) -> list[int]:
        """Rows of the known entities among `entity_ids` (unknown ones skipped), at most `cap`."""
        rows = [self.entity_row[e] for e in entity_ids if e in self.entity_row]
        return rows[:cap]

    def normalized_adjacency(self) -> torch.Tensor:
        """Sparse (E, E) D^-1/2 (A + I) D^-1/2 as a coalesced COO float32 tensor."""
        n = self.num_entities
        loops = np.arange(n, dtype=np.int64)
        idx = np.concatenate([self.edges, np.stack([loops, loops])], axis=1)
        val = np.concatenate([self.weights, np.ones(n, dtype=np.float32)])
        deg = np.bincount(idx[0], weights=val, minlength=n).astype(np.float32)
        inv = 1.0 / np.sqrt(np.maximum(deg, 1e-12))
        val = val * inv[idx[0]] * inv[idx[1]]
        return torch.sparse_coo_tensor(
            torch.from_numpy(idx), torch.from_numpy(val.astype(np.float32)), (n, n), check_invariants=True
        ).coalesce()


def kept_entities(
    articles: list[NewsArticle], entity_vectors: Mapping[str, np.ndarray], config: KGConfig
) -> set[str]:
    """Entities that pass the frequency cut-offs of `config` (counted in articles)."""
    df: Counter[str] = Counter(e for art in articles for e in art.entity_ids())
    hub = max(config.min_hub_articles, config.max_entity_share * len(articles))
    return {e for e, n in df.items() if n <= hub and (n >= config.min_entity_articles or e in entity_vectors)}


def build_graph(
    articles: Iterable[NewsArticle],
    entity_vectors: Mapping[str, np.ndarray] | None = None,
    config: KGConfig | None = None,
) -> KnowledgeGraph:
    """Build the graph from articles; `entity_vectors` are the .vec rows (may miss entities)."""
    config = config or KGConfig()
    arts = list(articles)
    keep = kept_entities(arts, entity_vectors or {}, config)
    news_entities: dict[str, list[str]] = {}
    for art in arts:
        ents = [e for e in art.entity_ids() if e in keep]
        news_entities[art.news_id] = ents[: config.max_entities_per_article]
    entity_ids = sorted({e for ents in news_entities.values() for e in ents})
    row = {e: i for i, e in enumerate(entity_ids)}
    pairs: Counter[tuple[int, int]] = Counter()
    for ents in news_entities.values():
        for a, b in combinations(sorted(row[e] for e in ents), 2):
            pairs[(a, b)] += 1
    kept = [(a, b, w) for (a, b), w in pairs.items() if w >= config.min_edge_weight]
    if kept:
        arr = np.array(kept, dtype=np.int64)
        src = np.concatenate([arr[:, 0], arr[:, 1]])
        dst = np.concatenate([arr[:, 1], arr[:, 0]])
        edges = np.stack([src, dst])
        weights = np.concatenate([arr[:, 2], arr[:, 2]]).astype(np.float32)
    else:
        edges = np.zeros((2, 0), dtype=np.int64)
        weights = np.zeros(0, dtype=np.float32)
    has_vector = np.zeros(len(entity_ids), dtype=bool)
    vectors: np.ndarray | None = None
    if entity_vectors:
        dim = len(next(iter(entity_vectors.values())))
        vectors = np.zeros((len(entity_ids), dim), dtype=np.float32)
        for e, i in row.items():
            vec = entity_vectors.get(e)
            if vec is not None:
                vectors[i] = vec
                has_vector[i] = True
    return KnowledgeGraph(entity_ids, news_entities, edges, weights, vectors, has_vector)


def graph_from_splits(splits: Mapping[str, MindSplit], config: KGConfig | None = None) -> KnowledgeGraph:
    """Graph over the news of the configured splits; .vec rows merged over splits."""
    config = config or KGConfig()
    news: dict[str, NewsArticle] = {}
    vectors: dict[str, np.ndarray] = {}
    for name, split in splits.items():
        if name not in config.splits:
            continue
        news.update(split.news)
        if split.entity_vectors:
            vectors.update(split.entity_vectors)
    return build_graph(news.values(), vectors or None, config)


def save_graph(graph: KnowledgeGraph, out_dir: Path) -> None:
    """Write `graph.safetensors` (edges, weights, vectors) and `graph.json` (ids, lists)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    tensors = {
        "edges": graph.edges,
        "weights": graph.weights,
        "has_vector": graph.has_vector.astype(np.uint8),
    }
    if graph.entity_vectors is not None:
        tensors["entity_vectors"] = graph.entity_vectors
    save_file({k: np.ascontiguousarray(v) for k, v in tensors.items()}, str(out_dir / GRAPH_FILE))
    meta = {"entity_ids": graph.entity_ids, "news_entities": graph.news_entities}
    (out_dir / META_FILE).write_text(json.dumps(meta))


def load_graph(directory: Path) -> KnowledgeGraph:
    """Read a graph written by `save_graph`; errors name the missing file."""
    for name in (GRAPH_FILE, META_FILE):
        if not (directory / name).is_file():
            raise DataError(f"{directory / name}: missing (not a KG directory?)")
    t = load_file(str(directory / GRAPH_FILE))
    try:
        meta = json.loads((directory / META_FILE).read_text())
    except json.JSONDecodeError as exc:
        raise DataError(f"{directory / META_FILE}: unreadable JSON ({exc})") from exc
    return KnowledgeGraph(
        entity_ids=list(meta["entity_ids"]),
        news_entities={k: list(v) for k, v in meta["news_entities"].items()},
        edges=t["edges"].astype(np.int64),
        weights=t["weights"].astype(np.float32),
        entity_vectors=t.get("entity_vectors"),
        has_vector=t["has_vector"].astype(bool),
    )


def build_kg(data_root: str | Path, out_dir: str | Path, config: KGConfig | None = None) -> dict[str, Any]:
    """Pipeline step: load the MIND dataset at `data_root`, build the graph, save it to
    `out_dir`; returns a summary dict (counts) that is also written to `summary.json`."""
    from newsrec.data import load_dataset

    graph = graph_from_splits(load_dataset(data_root), config)
    out = Path(out_dir)
    save_graph(graph, out)
    with_ents = sum(1 for ents in graph.news_entities.values() if ents)
    summary = {
        "num_entities": graph.num_entities,
        "num_edges": int(graph.edges.shape[1] // 2),
        "num_news": len(graph.news_entities),
        "news_with_entities": with_ents,
        "entities_with_vector": int(graph.has_vector.sum()),
        "entity_vector_dim": None if graph.entity_vectors is None else int(graph.entity_vectors.shape[1]),
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary
