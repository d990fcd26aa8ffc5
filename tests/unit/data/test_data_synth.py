"""Synthetic MIND: determinism, format, and the structure the models depend on."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from newsrec.data import load_dataset
from newsrec.data.synth import generate
from newsrec.data.types import MindSplit

FILES = ("news.tsv", "behaviors.tsv", "entity_embedding.vec", "relation_embedding.vec")


@pytest.fixture(scope="module")
def ds(tiny: Path) -> dict[str, MindSplit]:
    return load_dataset(tiny)


@pytest.fixture(scope="module")
def truth(tiny: Path) -> dict:
    return json.loads((tiny / "synth_truth.json").read_text())


def _files(root: Path) -> dict[str, bytes]:
    return {f"{s}/{f}": (root / s / f).read_bytes() for s in ("train", "dev") for f in FILES}


def test_same_seed_same_bytes_other_seed_differs(tiny: Path, tmp_path: Path) -> None:
    again = generate("tiny", 7, tmp_path / "again")
    assert _files(tmp_path / "again") == _files(tiny)
    assert (tmp_path / "again" / "synth_truth.json").read_bytes() == (tiny / "synth_truth.json").read_bytes()
    assert again.impressions == {"train": 1400, "dev": 600}
    generate("tiny", 8, tmp_path / "other")
    other = _files(tmp_path / "other")
    assert other["train/behaviors.tsv"] != _files(tiny)["train/behaviors.tsv"]
    assert other["dev/news.tsv"] != _files(tiny)["dev/news.tsv"]


def test_reads_back_clean_with_full_coverage(ds: dict[str, MindSplit]) -> None:
    assert list(ds) == ["train", "dev"]
    for split in ds.values():
        assert split.bad_rows == []
        assert 400 <= len(split.news) <= 700
        assert split.entity_vectors and split.relation_vectors
        assert all(v.shape == (100,) for v in split.entity_vectors.values())
        ids = {e for a in split.news.values() for e in a.entity_ids()}
        assert ids == set(split.entity_vectors)  # every mentioned entity has a vector
        for imp in split.impressions:
            assert set(imp.history) <= split.news.keys() and set(imp.candidates) <= split.news.keys()
            assert len(imp.history) <= 50 and len(set(imp.history)) == len(imp.history)
            assert 1 <= sum(imp.labels) < len(imp.labels)  # clicked and unclicked shown
    clicks = [sum(i.labels) for s in ds.values() for i in s.impressions]
    assert 1.2 <= float(np.mean(clicks)) <= 2.0


def test_mind_format_details(tiny: Path, ds: dict[str, MindSplit]) -> None:
    line = (tiny / "train" / "behaviors.tsv").read_text().splitlines()[0]
    assert re.fullmatch(
        r"1\tU\d+\t\d{1,2}/\d{1,2}/2019 \d{1,2}:\d\d:\d\d [AP]M\t[N\d ]*\t(N\d+-[01] ?)+", line
    )
    vec_line = (tiny / "dev" / "entity_embedding.vec").read_text().splitlines()[0]
    assert re.fullmatch(r"Q\d+(\t-?\d+\.\d{6}){100}\t", vec_line)
    for split in ds.values():
        for art in split.news.values():
            for field, ents in ((art.title, art.title_entities), (art.abstract, art.abstract_entities)):
                for ent in ents:
                    assert re.fullmatch(r"Q\d+", ent.wikidata_id) and ent.type in "POGC"
                    for off, form in zip(ent.occurrence_offsets, ent.surface_forms, strict=True):
                        assert field[off : off + len(form)] == form
    # Train is the first six days, dev the seventh, and impression ids count from 1 in each.
    train_times = [i.time for i in ds["train"].impressions]
    dev_times = [i.time for i in ds["dev"].impressions]
    assert max(train_times) < min(dev_times)
    assert {t.date() for t in dev_times} == {min(dev_times).date()}
    assert train_times == sorted(train_times)
    assert ds["dev"].impressions[0].impression_id == "1"


def test_cold_start_and_empty_histories(ds: dict[str, MindSplit]) -> None:
    train, dev = ds["train"], ds["dev"]
    clicked = {c for i in dev.impressions for c, lab in zip(i.candidates, i.labels, strict=True) if lab}
    cold = [c for c in clicked if c not in train.news]
    assert len(cold) / len(clicked) >= 0.30
    dev_users = {i.user_id: not i.history for i in dev.impressions}
    assert sum(dev_users.values()) / len(dev_users) >= 0.05
    # Fresh news gets the clicks: most dev clicks go to articles absent from train.
    n_cold_clicks = sum(
        lab
        for i in dev.impressions
        for c, lab in zip(i.candidates, i.labels, strict=True)
        if c not in train.news
    )
    assert n_cold_clicks / sum(sum(i.labels) for i in dev.impressions) >= 0.3


def _shares(split: MindSplit, truth: dict) -> dict[str, float]:
    n: Counter[str] = Counter()
    for imp in split.impressions:
        user = truth["users"][imp.user_id]
        topics, clusters = set(user["topics"]), set(user["clusters"])
        for nid, lab in zip(imp.candidates, imp.labels, strict=True):
            topic, cluster = truth["news"][nid]
            n["shown"] += 1
            n["clicked"] += lab
            n["shown_topic"] += topic in topics
            n["clicked_topic"] += lab and topic in topics
            if topic in topics:
                n["shown_cl"] += cluster in clusters
                n["clicked_cl"] += lab and cluster in clusters
    return {
        "topic_clicked": n["clicked_topic"] / n["clicked"],
        "topic_shown": n["shown_topic"] / n["shown"],
        "cluster_clicked": n["clicked_cl"] / n["clicked_topic"],
        "cluster_shown": n["shown_cl"] / n["shown_topic"],
    }


def test_clicks_follow_topics_and_storylines(ds: dict[str, MindSplit], truth: dict) -> None:
    for split in ds.values():
        s = _shares(split, truth)
        assert s["topic_clicked"] >= 2 * s["topic_shown"]  # interest topics, far above what is shown
        # Within a user's topics, favourite storylines are clicked beyond their share:
        # the entity signal carries information a topic-level model cannot see.
        assert s["cluster_clicked"] >= s["cluster_shown"] + 0.1
    categories = [t for t in truth["topics"]]
    for imp in ds["dev"].impressions[:200]:
        for nid in imp.candidates:
            assert ds["dev"].news[nid].category == categories[truth["news"][nid][0]]


def test_entity_vectors_reflect_storylines(ds: dict[str, MindSplit], truth: dict) -> None:
    vecs = ds["train"].entity_vectors
    assert vecs is not None
    clusters = [[q for q in c["entities"] if q in vecs] for c in truth["clusters"]]
    topic = [c["topic"] for c in truth["clusters"]]

    def cos(a: str, b: str) -> float:
        return float(vecs[a] @ vecs[b] / np.linalg.norm(vecs[a]) / np.linalg.norm(vecs[b]))

    same: list[float] = []
    same_topic: list[float] = []
    other: list[float] = []
    for i, ci in enumerate(clusters):
        for j, cj in enumerate(clusters):
            for a in ci[:3]:
                for b in cj[:3]:
                    if a == b:
                        continue
                    (same if i == j else same_topic if topic[i] == topic[j] else other).append(cos(a, b))
    assert np.mean(same) > np.mean(same_topic) + 0.2 > np.mean(other) + 0.2


def test_topics_are_separable_from_text(ds: dict[str, MindSplit]) -> None:
    """Nearest-centroid over bag-of-words (a crude stand-in for a sentence encoder)."""
    train, dev = list(ds["train"].news.values()), list(ds["dev"].news.values())
    vocab: dict[str, int] = {}

    def bow(texts: list[str]) -> np.ndarray:
        rows = np.zeros((len(texts), 5000), dtype=np.float32)
        for r, t in enumerate(texts):
            for w in re.findall(r"[a-z]+", t.lower()):
                rows[r, vocab.setdefault(w, len(vocab)) % 5000] += 1
        return rows / np.maximum(1, np.linalg.norm(rows, axis=1, keepdims=True))

    xtr, xdev = bow([a.text() for a in train]), bow([a.text() for a in dev])
    cats = sorted({a.category for a in train})
    ytr = np.array([cats.index(a.category) for a in train])
    cent = np.stack([xtr[ytr == k].mean(axis=0) for k in range(len(cats))])
    pred = (xdev @ cent.T).argmax(axis=1)
    acc = float(np.mean(pred == np.array([cats.index(a.category) for a in dev])))
    assert acc >= 0.9


def test_unknown_size(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown size"):
        generate("huge", 1, tmp_path)


def test_shared_session_fixture(tmp_path_factory: pytest.TempPathFactory, tiny: Path) -> None:
    from fixtures_synth import tiny_dataset  # tests/ is on sys.path through tests/conftest.py

    root = tiny_dataset(tmp_path_factory)
    assert tiny_dataset(tmp_path_factory) == root  # made once, then reused
    assert _files(root) == _files(tiny)  # same seed as the data tests' own copy
