"""Upserted articles stored in full next to their vectors (newsrec.index.articles), against a
real Milvus Lite file: read back after the file is closed and reopened, directly and through
the in-memory mirror; replaced by a second upsert; a damaged row refused by name; a field too
large for Milvus refused before anything is written."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from newsrec.errors import InvalidInput
from newsrec.index.articles import MAX_FIELD_BYTES, StoredArticle
from newsrec.index.memory import MirroredIndex
from newsrec.index.milvus import ARTICLES_COLLECTION, MilvusIndex


def article(news_id: str, title: str = "Local team wins ✓") -> StoredArticle:
    rng = np.random.default_rng(len(news_id))
    return StoredArticle(
        news_id=news_id,
        title=title,
        abstract="Fans celebrated downtown — late into the night.",
        category="sports",
        subcategory="football",
        entities=(("Q123", "Team", "O", 0.75), ("Q7", "", "", 1.0)),
        published_at=1_573_860_758,
        model_version="v1",
        vector=rng.normal(size=16).astype(np.float32),
        text_vector=rng.normal(size=384).astype(np.float32),
    )


def same(a: StoredArticle, b: StoredArticle) -> bool:
    plain = (
        "news_id",
        "title",
        "abstract",
        "category",
        "subcategory",
        "entities",
        "published_at",
        "model_version",
    )
    return all(getattr(a, f) == getattr(b, f) for f in plain) and (
        np.array_equal(a.vector, b.vector) and np.array_equal(a.text_vector, b.text_vector)
    )


@pytest.mark.parametrize("mirror", [False, True], ids=["milvus-lite", "mirror"])
def test_articles_come_back_after_a_reopen(tmp_path: Path, mirror: bool) -> None:
    uri = str(tmp_path / "milvus.db")
    milvus = MilvusIndex.from_uri(uri)
    index = MirroredIndex(milvus, background=False) if mirror else milvus
    index.put_articles("news_a", [article("UP1"), article("UP2")])
    index.put_articles("news_b", [article("UP1", title="Another alias")])
    index.put_articles("news_a", [article("UP2", title="Replaced")])
    milvus.close(stop_lite=True)  # the file alone must hold them

    reopened = MilvusIndex.from_uri(uri)
    try:
        got, errors = (MirroredIndex(reopened, background=False) if mirror else reopened).load_articles(
            "news_a"
        )
    finally:
        reopened.close(stop_lite=True)
    assert errors == []
    by_id = {a.news_id: a for a in got}
    assert sorted(by_id) == ["UP1", "UP2"]
    assert same(by_id["UP1"], article("UP1"))
    assert same(by_id["UP2"], article("UP2", title="Replaced"))


def test_a_damaged_row_is_refused_by_name(tmp_path: Path) -> None:
    index = MilvusIndex.from_uri(str(tmp_path / "milvus.db"))
    try:
        index.put_articles("news_a", [article("UP1")])
        row = {"key": "news_a/UP9", "alias": "news_a", **article("UP9").fields(), "v": [0.0, 0.0]}
        row["abstract"] = "edited by hand"
        index._call("upsert", ARTICLES_COLLECTION, [row])
        got, errors = index.load_articles("news_a")
    finally:
        index.close(stop_lite=True)
    assert [a.news_id for a in got] == ["UP1"]
    assert len(errors) == 1 and "'news_a/UP9'" in errors[0] and "checksum" in errors[0]


def test_a_field_too_large_to_store_is_refused_before_writing() -> None:
    big = replace(article("UP1"), title="😀" * (MAX_FIELD_BYTES // 4 + 1))
    with pytest.raises(InvalidInput, match=r"^title: \d+ bytes in UTF-8 when stored, at most 65535"):
        big.fields()
