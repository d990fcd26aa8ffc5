"""Typed records of the MIND format (Microsoft News Dataset).

These types are the contract between the reader, the generator, the embedding
precompute, the models and the services.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import numpy as np

NEWS_COLUMNS = (
    "news_id",
    "category",
    "subcategory",
    "title",
    "abstract",
    "url",
    "title_entities",
    "abstract_entities",
)
BEHAVIOR_COLUMNS = ("impression_id", "user_id", "time", "history", "impressions")
MIND_TIME_FORMAT = "%m/%d/%Y %I:%M:%S %p"  # e.g. 11/15/2019 8:55:22 AM


@dataclass(frozen=True, slots=True)
class Entity:
    """One entity mention list entry of `title_entities` / `abstract_entities`."""

    wikidata_id: str
    label: str = ""
    type: str = ""
    confidence: float = 1.0
    occurrence_offsets: tuple[int, ...] = ()
    surface_forms: tuple[str, ...] = ()


@dataclass(slots=True)
class NewsArticle:
    """A row of news.tsv."""

    news_id: str
    category: str
    subcategory: str
    title: str
    abstract: str
    url: str = ""
    title_entities: list[Entity] = field(default_factory=list)
    abstract_entities: list[Entity] = field(default_factory=list)

    def text(self) -> str:
        """The text sent to the embedding model."""
        return f"Title: {self.title}\nAbstract: {self.abstract}"

    def entity_ids(self) -> list[str]:
        """WikidataIds of title and abstract entities, first occurrence order, no repeats."""
        seen: dict[str, None] = {}
        for ent in (*self.title_entities, *self.abstract_entities):
            seen.setdefault(ent.wikidata_id, None)
        return list(seen)


@dataclass(slots=True)
class Impression:
    """A row of behaviors.tsv.

    `labels` is empty for MIND's test split, which ships candidates without labels.
    """

    impression_id: str
    user_id: str
    time: datetime
    history: list[str]
    candidates: list[str]
    labels: list[int]


@dataclass(frozen=True, slots=True)
class BadRow:
    """A row the reader could not use, with where and why."""

    file: str
    line: int
    reason: str
    detail: str = ""


@dataclass(slots=True)
class MindSplit:
    """One split directory (train, dev or test) of a MIND-format dataset."""

    name: str
    news: dict[str, NewsArticle]
    impressions: list[Impression]
    entity_vectors: dict[str, np.ndarray] | None = None
    relation_vectors: dict[str, np.ndarray] | None = None
    bad_rows: list[BadRow] = field(default_factory=list)
