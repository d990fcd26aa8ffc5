from __future__ import annotations

import time

import numpy as np

from services.cache import LruVectorCache, cache_key
from services.catalog import NewsCatalog, NewsInfo, popular_fresh


def test_cache_key_depends_on_version_user_and_history_order() -> None:
    base = cache_key("v1", "U1", ["N1", "N2"])
    assert base != cache_key("v2", "U1", ["N1", "N2"])
    assert base != cache_key("v1", "U2", ["N1", "N2"])
    assert base != cache_key("v1", "U1", ["N2", "N1"])
    assert base == cache_key("v1", "U1", ["N1", "N2"])


def test_lru_evicts_least_recent_and_expires() -> None:
    cache = LruVectorCache(max_size=2, ttl_seconds=60)
    cache.set("a", np.ones(2, np.float32))
    cache.set("b", np.ones(2, np.float32))
    assert cache.get("a") is not None  # a is now most recent
    cache.set("c", np.ones(2, np.float32))
    assert cache.get("b") is None and cache.get("a") is not None
    short = LruVectorCache(max_size=2, ttl_seconds=0.01)
    short.set("x", np.ones(2, np.float32))
    time.sleep(0.03)
    assert short.get("x") is None


def test_popular_fresh_prefers_clicks_and_recency() -> None:
    day = 86400
    catalog = NewsCatalog(
        [
            NewsInfo("old_hit", "t", "c", "s", 0, clicks=100),
            NewsInfo("new_hit", "t", "c", "s", 3 * day, clicks=100),
            NewsInfo("new_cold", "t", "c", "s", 3 * day, clicks=0),
        ]
    )
    ranked = [info.news_id for info, _ in popular_fresh(catalog, 3, half_life_hours=24)]
    assert ranked == ["new_hit", "old_hit", "new_cold"]
    assert len(popular_fresh(catalog, 1)) == 1


def test_catalog_titles_in_order_with_blank_for_unknown() -> None:
    catalog = NewsCatalog([NewsInfo("N1", "One", "c", "s", 0), NewsInfo("N2", "Two", "c", "s", 0)])
    assert catalog.titles(["N2", "nope", "N1"]) == ["Two", "", "One"]
    catalog.add(NewsInfo("N3", "Three", "c", "s", 0))
    catalog.add(NewsInfo("N1", "One, updated", "c", "s", 0))
    assert catalog.titles(["N3", "N1"]) == ["Three", "One, updated"]
