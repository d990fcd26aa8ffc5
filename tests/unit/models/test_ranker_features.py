"""Ranker cross features on a hand-built news table."""

from __future__ import annotations

import numpy as np
import pytest

from newsrec.models.ranker import FEATURES, NewsTable, ranker_features

F = {name: i for i, name in enumerate(FEATURES)}


def table() -> NewsTable:
    vecs = np.eye(4, dtype=np.float32)
    return NewsTable(
        vectors=vecs,
        category=np.array([0, 0, 1, 1]),
        ent_idx=np.array([[0, 1], [1, -1], [2, -1], [-1, -1]]),
        popularity=np.array([10, 0, 3, 0], dtype=np.float32),
        first_seen=np.array([0.0, 3600.0, np.nan, 7200.0]),
        known=np.array([True, True, True, False]),
    )


def test_features_hand_computed() -> None:
    t = table()
    user = np.array([1, 0, 0, 0], dtype=np.float32)
    f = ranker_features(t, user, hist_rows=np.array([0, 2]), cand_rows=np.array([1, 3, -1]), now=3 * 3600.0)
    assert f.shape == (3, len(FEATURES))
    assert f[:, F["dot"]].tolist() == [0.0, 0.0, 0.0]
    # candidate 1: category 0, history categories {0, 1} -> share 0.5; candidate 3: category 1 -> 0.5
    assert f[0, F["category_share"]] == pytest.approx(0.5)
    # candidate 1 has entity 1, which history article 0 has -> overlap 1; candidate 3 has none -> 0
    assert f[0, F["entity_overlap"]] == 1.0 and f[1, F["entity_overlap"]] == 0.0
    assert f[0, F["log_popularity"]] == pytest.approx(0.0)
    assert f[0, F["log_age_hours"]] == pytest.approx(np.log1p(2.0))  # seen at 1h, now 3h
    assert f[1, F["log_age_hours"]] == pytest.approx(np.log1p(1.0))
    assert f[:, F["cold"]].tolist() == [0.0, 1.0, 1.0]  # unseen-in-train and unknown ids are cold
    assert f[2, F["has_entities"]] == 0.0 and f[0, F["has_entities"]] == 1.0
    assert f[0, F["log_history_len"]] == pytest.approx(np.log1p(2))


def test_popularity_override_and_empty_history() -> None:
    t = table()
    user = np.array([0, 0, 1, 0], dtype=np.float32)
    f = ranker_features(
        t, user, np.array([], dtype=np.int64), np.array([0, 2]), None, popularity=np.array([9.0, 2.0])
    )
    assert f[:, F["log_popularity"]] == pytest.approx(np.log1p([9.0, 2.0]))
    assert f[1, F["dot"]] == 1.0
    assert f[:, F["age_missing"]].tolist() == [1.0, 1.0]
    assert f[:, F["hist_max_cos"]].tolist() == [0.0, 0.0]


def test_entity_overlap_matches_set_membership_on_a_random_table() -> None:
    rng = np.random.default_rng(5)
    n, m = 300, 6
    ent = rng.integers(-1, 40, size=(n, m))  # -1 is padding
    t = NewsTable(
        vectors=rng.normal(size=(n, 8)).astype(np.float32),
        category=rng.integers(0, 5, n),
        ent_idx=ent,
        popularity=np.zeros(n, np.float32),
        first_seen=np.zeros(n),
        known=np.ones(n, bool),
    )
    hist, cands = rng.choice(n, 30, replace=False), np.append(rng.choice(n, 80, replace=False), -1)
    f = ranker_features(t, np.ones(8, np.float32), hist, cands, None)
    hist_ents = {e for row in hist for e in ent[row] if e >= 0}
    for i, row in enumerate(cands):
        own = [e for e in ent[row] if e >= 0] if row >= 0 else []
        want = sum(e in hist_ents for e in own) / max(len(own), 1)
        assert f[i, F["entity_overlap"]] == pytest.approx(want)


def test_als_feature_is_the_folded_in_user_score() -> None:
    from dataclasses import replace

    from newsrec.models.als import ALSModel

    rng = np.random.default_rng(0)
    als = ALSModel(rng.standard_normal((4, 3)).astype(np.float32), alpha=2.0, regularization=0.5)
    t = replace(table(), als=als)
    hist, cands = np.array([0, 2]), np.array([1, 3, -1])
    f = ranker_features(t, np.ones(4, np.float32), hist, cands, None)
    want = als.scores(hist, cands)
    assert f[:, F["als"]] == pytest.approx(want) and want[2] == 0.0 and want[:2].any()
    assert sorted(f[:, F["rank_als"]].tolist()) == [0.0, 0.5, 1.0]
    # without the model (older artifacts), or without a history: zeros
    assert not ranker_features(table(), np.ones(4, np.float32), hist, cands, None)[:, F["als"]].any()
    assert not ranker_features(t, np.ones(4, np.float32), hist[:0], cands, None)[:, F["als"]].any()
