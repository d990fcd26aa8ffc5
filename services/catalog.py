"""Display metadata of served news (title, category, publish time), and the fallback list.

The retrieval process answers candidates with titles from here (including articles
added by UpsertNews); the gateway keeps a popular-and-fresh list for when retrieval is down.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import repeat


@dataclass(frozen=True, slots=True)
class NewsInfo:
    news_id: str
    title: str
    category: str
    subcategory: str
    published_at: int  # unix seconds
    clicks: int = 0


class NewsCatalog:
    """Thread-safe id -> NewsInfo map."""

    def __init__(self, items: Iterable[NewsInfo] = ()) -> None:
        self._items = {item.news_id: item for item in items}
        # Titles by id on their own: Retrieve looks up a few hundred per call, and a
        # C-level map over this dict avoids a Python loop and an attribute read per id.
        self._titles = {news_id: item.title for news_id, item in self._items.items()}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._items)

    def get(self, news_id: str) -> NewsInfo | None:
        return self._items.get(news_id)

    def titles(self, news_ids: Sequence[str]) -> list[str]:
        """The title of each id, "" for an unknown one."""
        return list(map(self._titles.get, news_ids, repeat("")))

    def add(self, item: NewsInfo) -> None:
        with self._lock:
            self._items[item.news_id] = item
            self._titles[item.news_id] = item.title

    def items(self) -> list[NewsInfo]:
        with self._lock:
            return list(self._items.values())


def popular_fresh(
    catalog: NewsCatalog, n: int, half_life_hours: float = 24.0
) -> list[tuple[NewsInfo, float]]:
    """Top-n by log(1+clicks) decayed by age relative to the newest article.

    Precomputed once at startup: the list the gateway answers with when retrieval is down.
    """
    items = catalog.items()
    if not items:
        return []
    newest = max(item.published_at for item in items)
    decay = math.log(2) / (half_life_hours * 3600.0)
    scored = [
        (item, math.log1p(item.clicks) * math.exp(-decay * (newest - item.published_at))) for item in items
    ]
    # Ties (e.g. no click counts at all) fall back to the newest first, then id for stability.
    scored.sort(key=lambda pair: (-pair[1], -pair[0].published_at, pair[0].news_id))
    return scored[:n]
