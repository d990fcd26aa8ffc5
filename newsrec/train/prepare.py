"""Load a dataset + embeddings + graph once and derive everything training needs."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from newsrec.data import first_seen, load_dataset
from newsrec.data.types import Impression, MindSplit
from newsrec.embed.store import EmbeddingTable, load_embeddings
from newsrec.errors import DataError
from newsrec.kg.graph import KGConfig, KnowledgeGraph, graph_from_splits, load_graph
from newsrec.models.features import NewsFeatures, build_features


@dataclass
class Inputs:
    """Raw inputs, loadable once and shared by several runs (the ablation)."""

    splits: dict[str, MindSplit]
    embeddings: EmbeddingTable | None
    graph: KnowledgeGraph
    features: NewsFeatures


def load_inputs(data: Path, embeddings: Path | None, kg: Path | None = None, max_entities: int = 8) -> Inputs:
    splits = load_dataset(data)
    if "train" not in splits:
        raise DataError(f"{data}: no train split")
    table = load_embeddings(Path(embeddings)) if embeddings is not None else None
    graph = (
        load_graph(Path(kg))
        if kg is not None
        else graph_from_splits(splits, KGConfig(max_entities_per_article=max_entities))
    )
    feats = build_features(splits, table, graph, first_seen(splits), max_entities)
    return Inputs(splits, table, graph, feats)


def labeled(imps: list[Impression]) -> list[Impression]:
    return [imp for imp in imps if imp.labels]


@dataclass
class ImpressionSplits:
    train: list[Impression]  # for the towers
    holdout: list[Impression]  # latest train impressions, for the ranker
    dev: list[Impression]  # labeled evaluation impressions
    dev_name: str


def split_impressions(
    splits: dict[str, MindSplit],
    max_train: int | None,
    holdout: float,
    max_dev: int | None,
    seed: int,
) -> ImpressionSplits:
    """Train/holdout/dev impressions. Without a labeled dev split, the latest 10% of
    train impressions serve as dev (said in `dev_name`)."""
    rng = np.random.default_rng(seed)
    train = labeled(splits["train"].impressions)
    dev_name = "dev"
    dev = labeled(splits["dev"].impressions) if "dev" in splits else []
    train.sort(key=lambda imp: imp.time)
    if not dev:
        cut = int(len(train) * 0.9)
        train, dev, dev_name = train[:cut], train[cut:], "train-tail"
    if max_train is not None and len(train) > max_train:
        keep = np.sort(rng.choice(len(train), max_train, replace=False))
        train = [train[i] for i in keep]
    cut = len(train) - int(len(train) * holdout)
    if max_dev is not None and len(dev) > max_dev:
        keep = np.sort(np.random.default_rng(seed + 1).choice(len(dev), max_dev, replace=False))
        dev = [dev[i] for i in keep]
    return ImpressionSplits(train[:cut], train[cut:], dev, dev_name)
