"""Upserted (cold-start) articles in full, stored next to their vectors so they survive a restart.

A collection row holds a vector and a few filter fields; an article added online also needs
its text, title, entities, publish time and raw text embedding to be displayed and ranked
after a restart. `StoredArticle` is that record, serialised to a few string fields (title,
abstract, entities and the rest) with a checksum over all of them: a reload verifies each
record and refuses a damaged one by name instead of serving it half.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from newsrec.data.types import Entity, NewsArticle
from newsrec.errors import DataError, InvalidInput

# Milvus' VARCHAR limit, in UTF-8 bytes: the bound of each stored field.
MAX_FIELD_BYTES = 65_535
FORMAT = 1


@dataclass(frozen=True)
class StoredArticle:
    """One upserted article with everything the services need to serve and rank it."""

    news_id: str
    title: str
    abstract: str
    category: str
    subcategory: str
    entities: tuple[tuple[str, str, str, float], ...]  # (wikidata id, label, type, confidence)
    published_at: int  # unix seconds
    model_version: str  # the news tower `vector` comes from
    vector: np.ndarray  # float32 (dim,): the news-tower output, as in the collection
    text_vector: np.ndarray  # float32 (text_dim,): the provider's embedding of `article().text()`

    def article(self) -> NewsArticle:
        ents = [Entity(w, label, kind, conf) for w, label, kind, conf in self.entities]
        return NewsArticle(
            self.news_id, self.category, self.subcategory, self.title, self.abstract, title_entities=ents
        )

    def fields(self) -> dict[str, str]:
        """The record as string fields (title, abstract, entities, value), bounded in size;
        `value` carries the checksum of all four. InvalidInput names a field too large."""
        rest = {
            "format": FORMAT,
            "news_id": self.news_id,
            "category": self.category,
            "subcategory": self.subcategory,
            "published_at": int(self.published_at),
            "model_version": self.model_version,
            "vector": _b64(self.vector),
            "text_vector": _b64(self.text_vector),
        }
        out = {
            "title": self.title,
            "abstract": self.abstract,
            "entities": json.dumps([list(e) for e in self.entities], ensure_ascii=False),
        }
        out["value"] = json.dumps({**rest, "sha256": _digest(out, rest)}, ensure_ascii=False)
        for name, text in out.items():
            size = len(text.encode())
            if size > MAX_FIELD_BYTES:
                raise InvalidInput(f"{name}: {size} bytes in UTF-8 when stored, at most {MAX_FIELD_BYTES}")
        return out

    @classmethod
    def from_fields(cls, row: dict[str, Any], where: str) -> StoredArticle:
        """The record of `row` (as written by `fields`), verified; DataError names `where`."""
        try:
            rest = json.loads(row["value"])
            text = {name: str(row[name]) for name in ("title", "abstract", "entities")}
            claimed = rest.pop("sha256")
            if claimed != _digest(text, rest):
                raise DataError(f"{where}: stored article fails its checksum (damaged or hand-edited)")
            if rest.get("format") != FORMAT:
                raise DataError(f"{where}: stored article format {rest.get('format')!r}, expected {FORMAT}")
            return cls(
                news_id=str(rest["news_id"]),
                title=text["title"],
                abstract=text["abstract"],
                category=str(rest["category"]),
                subcategory=str(rest["subcategory"]),
                entities=tuple(
                    (str(w), str(la), str(t), float(c)) for w, la, t, c in json.loads(text["entities"])
                ),
                published_at=int(rest["published_at"]),
                model_version=str(rest["model_version"]),
                vector=_unb64(rest["vector"]),
                text_vector=_unb64(rest["text_vector"]),
            )
        except DataError:
            raise
        except (KeyError, TypeError, ValueError) as exc:  # JSONDecodeError is a ValueError
            raise DataError(f"{where}: unreadable stored article ({type(exc).__name__}: {exc})") from exc


class ArticleStore(Protocol):
    """Durable upserted articles, per alias (what an index that keeps them offers)."""

    def put_articles(self, alias: str, articles: Sequence[StoredArticle]) -> None:
        """Insert or replace; returns only once the records are durable."""
        ...

    def load_articles(self, alias: str) -> tuple[list[StoredArticle], list[str]]:
        """Every verified record of `alias`, and one error line per record refused."""
        ...


def _b64(vector: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(vector, dtype="<f4").tobytes()).decode()


def _unb64(text: str) -> np.ndarray:
    out = np.frombuffer(base64.b64decode(text, validate=True), dtype="<f4").astype(np.float32)
    if not np.isfinite(out).all():
        raise ValueError("non-finite vector")
    return out


def _digest(text: dict[str, str], rest: dict[str, Any]) -> str:
    canonical = json.dumps([text["title"], text["abstract"], text["entities"], rest], sort_keys=True)
    return hashlib.sha256(canonical.encode()).hexdigest()
