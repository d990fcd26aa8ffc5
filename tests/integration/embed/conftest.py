"""Fixtures: the local model (loaded once), a real embedding server per test, news files."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from newsrec.embed.local import LocalProvider

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


@pytest.fixture(scope="session")
def local_provider() -> LocalProvider:
    import torch

    torch.set_num_threads(1)
    from newsrec.embed.config import ProviderConfig

    return LocalProvider.from_config(ProviderConfig())


@pytest.fixture()
def embedding_server(local_provider: LocalProvider) -> Iterator[tuple[object, int]]:
    from faulty_server import start_faulty_server

    # the test-only subclass with a fault plan; "my-embedder" is a model outside the size table
    server, port = start_faulty_server(
        local_provider, model_name="text-embedding-3-small", aliases=("my-embedder",)
    )
    yield server, port
    server.stop()


@pytest.fixture(scope="session")
def synth_tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from newsrec.data.synth import generate

    out = tmp_path_factory.mktemp("synth")
    generate("tiny", 7, out)
    return out


@pytest.fixture()
def api_key(monkeypatch: pytest.MonkeyPatch) -> str:
    key = "sk-test-" + "c0ffee" * 6
    monkeypatch.setenv("OPENAI_API_KEY", key)
    return key


def read_json(path: Path) -> dict:
    return json.loads(path.read_text())
