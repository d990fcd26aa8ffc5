"""News files and JSON helpers of the embedding tests (a plain module: `from conftest import`
can find another directory's conftest when several test directories run together)."""

from __future__ import annotations

import json
from pathlib import Path

CATEGORIES = {
    "sports": ["striker", "goal", "league", "coach", "match", "season", "playoff", "stadium"],
    "finance": ["stocks", "bond", "inflation", "earnings", "bank", "market", "investors", "rates"],
    "weather": ["storm", "rain", "snow", "forecast", "heat", "wind", "flood", "temperature"],
    "food": ["recipe", "chef", "dinner", "bake", "restaurant", "dessert", "soup", "grill"],
}


def hand_made_news(n: int, prefix: str = "H") -> list[tuple[str, str, str, str]]:
    """(news_id, category, title, abstract) rows: short, distinct, topic-bearing texts."""
    rows = []
    cats = list(CATEGORIES)
    for i in range(n):
        cat = cats[i % len(cats)]
        words = CATEGORIES[cat]
        a, b, c = words[i % 8], words[(i * 3 + 1) % 8], words[(i * 5 + 2) % 8]
        rows.append((f"{prefix}{i}", cat, f"{a} and {b} story {i}", f"Report number {i} on {c} and {a}."))
    return rows


def write_news(path: Path, rows: list[tuple[str, str, str, str]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as f:
        for nid, cat, title, abstract in rows:
            f.write("\t".join([nid, cat, cat + "sub", title, abstract, "", "[]", "[]"]) + "\n")
    return path


def read_json(path: Path) -> dict:
    return json.loads(path.read_text())
