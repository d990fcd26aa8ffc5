"""Reader tests on hand-written fixtures that copy MIND's quirks."""

from __future__ import annotations

import shutil
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest

from newsrec.data import (
    first_seen,
    format_time,
    load_dataset,
    load_split,
    parse_time,
    read_behaviors,
    read_news,
    read_vectors,
)
from newsrec.errors import DataError


def test_news_quirks(mind_fixtures: Path) -> None:
    news, bad = read_news(mind_fixtures / "good" / "news.tsv")  # CRLF line ends
    assert bad == []
    by_id = {a.news_id: a for a in news}
    assert [a.news_id for a in news] == ["N55528", "N19639", "N61837", "N53526", "N38324"]
    quoted = by_id["N61837"]
    assert quoted.title == "The Cost of Trump's Aid Freeze in the Trenches of \"Ukraine's War\""
    assert quoted.abstract == "" and quoted.title_entities == [] and quoted.abstract_entities == []
    assert not quoted.url.endswith("\r")
    assert by_id["N53526"].title.startswith("Müller und Sánchez: Pelé")
    assert by_id["N53526"].abstract.endswith("東京 2020.")
    royals = by_id["N55528"]
    assert royals.entity_ids() == ["Q80976", "Q43274", "Q9682"]
    queen = royals.title_entities[2]
    assert queen.label == "Elizabeth II" and queen.type == "P" and queen.confidence == 0.97
    for art in news:
        for ent in art.title_entities:
            for off, form in zip(ent.occurrence_offsets, ent.surface_forms, strict=True):
                assert art.title[off : off + len(form)] == form
    assert by_id["N19639"].entity_ids() == ["Q193583"]  # same entity in title and abstract, once


def test_behaviors_quirks(mind_fixtures: Path) -> None:
    imps, bad = read_behaviors(mind_fixtures / "good" / "behaviors.tsv")
    assert bad == []
    assert len(imps) == 4
    first = imps[0]
    assert first.history == ["N55528", "N19639", "N55528", "N61837"]  # duplicates kept, in order
    assert first.candidates == ["N53526", "N38324"] and first.labels == [0, 1]
    assert first.time == datetime(2019, 11, 11, 9, 5, 58)
    assert imps[1].history == [] and imps[1].labels == [1, 0, 0]
    assert imps[3].time == datetime(2019, 11, 11, 0, 0, 1)  # 12:00:01 AM is just after midnight


def test_test_split_without_labels(mind_fixtures: Path) -> None:
    imps, bad = read_behaviors(mind_fixtures / "test_split" / "behaviors.tsv")
    assert bad == []
    assert imps[0].candidates == ["N53526", "N38324", "N61837"] and imps[0].labels == []
    assert imps[1].history == [] and imps[1].time == datetime(2019, 11, 22, 23, 59, 59)


def test_bad_news_rows(mind_fixtures: Path) -> None:
    path = mind_fixtures / "bad" / "news.tsv"
    news, bad = read_news(path)
    assert [a.news_id for a in news] == ["N55528", "N7"]
    got = [(b.file, b.line, b.reason) for b in bad]
    assert got == [
        (str(path), 2, "column_count"),
        (str(path), 3, "bad_json"),
        (str(path), 4, "empty_id"),
        (str(path), 5, "duplicate_id"),
        (str(path), 6, "bad_entity"),
    ]
    assert "line 1" in bad[3].detail  # the duplicate names where the first one is


def test_bad_behavior_rows(mind_fixtures: Path) -> None:
    path = mind_fixtures / "bad" / "behaviors.tsv"
    imps, bad = read_behaviors(path)
    assert [i.impression_id for i in imps] == ["1", "6"]
    assert [(b.file, b.line, b.reason) for b in bad] == [
        (str(path), 2, "bad_label"),
        (str(path), 3, "empty_id"),
        (str(path), 4, "bad_time"),
        (str(path), 5, "column_count"),
    ]
    assert "N1-x" in bad[0].detail


def test_vectors(mind_fixtures: Path) -> None:
    vecs, bad = read_vectors(mind_fixtures / "good" / "entity_embedding.vec")  # trailing tabs
    assert bad == [] and set(vecs) == {"Q80976", "Q43274", "Q9682", "Q193583"}
    assert all(v.shape == (100,) and v.dtype == np.float32 for v in vecs.values())
    vecs, bad = read_vectors(mind_fixtures / "bad" / "entity_embedding.vec")
    assert list(vecs) == ["Q1"]
    assert [(b.line, b.reason) for b in bad] == [(2, "bad_vector"), (3, "vector_dim"), (4, "duplicate_id")]


def test_encoding_and_blank_lines(tmp_path: Path) -> None:
    path = tmp_path / "behaviors.tsv"
    good = "1\tU1\t11/11/2019 9:05:58 AM\t\tN1-1\n"
    path.write_bytes(b"\xef\xbb\xbf" + good.encode() + b"\n" + b"2\tU\xff\t11/11/2019 9:05:58 AM\t\tN1-1\n")
    imps, bad = read_behaviors(path)
    assert len(imps) == 1
    assert [(b.line, b.reason) for b in bad] == [(2, "blank_line"), (3, "bad_encoding")]


def test_time_round_trip() -> None:
    for text in (
        "11/15/2019 8:55:22 AM",
        "1/1/2020 12:00:00 AM",
        "12/31/2019 12:59:59 PM",
        "7/4/2019 11:05:09 PM",
    ):
        assert format_time(parse_time(text)) == text
    for text in ("13/15/2019 8:55:22 AM", "11/15/2019 13:55:22 PM", "11/15/2019 8:55:22", "yesterday"):
        with pytest.raises(ValueError):
            parse_time(text)


def test_load_split_and_dataset(mind_fixtures: Path, tmp_path: Path) -> None:
    split = load_split(mind_fixtures / "good")
    assert split.name == "good" and len(split.news) == 5 and len(split.impressions) == 4
    assert split.entity_vectors is not None and len(split.entity_vectors) == 4
    assert split.relation_vectors is not None and set(split.relation_vectors) == {"P31", "P279"}
    # MIND zips unpack to MINDsmall_train / MINDsmall_dev: both layouts are found.
    shutil.copytree(mind_fixtures / "good", tmp_path / "MINDsmall_train")
    shutil.copytree(mind_fixtures / "test_split", tmp_path / "MINDsmall_test")
    shutil.copytree(mind_fixtures / "good", tmp_path / "MINDsmall_dev")
    ds = load_dataset(tmp_path)
    assert list(ds) == ["train", "dev", "test"]
    assert ds["test"].entity_vectors is None and ds["test"].impressions[0].labels == []


def test_missing_paths_are_named(mind_fixtures: Path, tmp_path: Path) -> None:
    with pytest.raises(DataError, match="nowhere"):
        load_dataset(tmp_path / "nowhere")
    with pytest.raises(DataError, match="no news.tsv"):
        load_dataset(tmp_path)
    (tmp_path / "train").mkdir()
    (tmp_path / "train" / "news.tsv").write_text("")
    with pytest.raises(DataError, match=r"train/behaviors\.tsv"):
        load_dataset(tmp_path)


def test_first_seen(mind_fixtures: Path) -> None:
    seen = first_seen(load_dataset(mind_fixtures / "good"))
    # N55528 is first in impression 4's history (Nov 11, 12:00:01 AM), earlier than impression 1.
    assert seen["N55528"] == datetime(2019, 11, 11, 0, 0, 1)
    assert seen["N53526"] == datetime(2019, 11, 11, 9, 5, 58)
    assert seen["N99999"] == datetime(2019, 11, 14, 7, 1, 48)  # in a history only, unknown to news.tsv
