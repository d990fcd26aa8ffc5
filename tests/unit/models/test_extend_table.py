"""`extend_table`: rows of articles upserted after training, appended without copying the
table each time, scored from their content (text vector included), and invisible to a
reader holding the table from before."""

from __future__ import annotations

import numpy as np

from newsrec.models.ranker import FEATURES, NewsTable, extend_table, ranker_features


def table(n: int = 4, d: int = 3, t: int = 5) -> NewsTable:
    rng = np.random.default_rng(0)
    text = rng.normal(size=(n, t)).astype(np.float32)
    return NewsTable(
        vectors=rng.normal(size=(n, d)).astype(np.float32),
        category=np.arange(n, dtype=np.int64) % 2,
        ent_idx=np.full((n, 2), -1, np.int64),
        popularity=np.ones(n, np.float32),
        first_seen=np.full(n, 100.0),
        known=np.ones(n, bool),
        text=text / np.linalg.norm(text, axis=1, keepdims=True),
    )


def add(tab: NewsTable, text: np.ndarray | None) -> None:
    extend_table(
        tab,
        np.ones((1, 3), np.float32),
        np.array([0]),
        np.array([[0, -1]]),
        np.array([200.0]),
        None if text is None else text[None, :],
    )


def test_appended_rows_are_cold_and_carry_their_unit_text_vector() -> None:
    tab = table()
    before = tab.vectors
    add(tab, tab.text[0] * 3.0)  # the text of row 0, not unit length
    add(tab, None)
    assert len(tab.vectors) == len(tab.text) == len(tab.known) == 6
    assert np.allclose(tab.text[4], tab.text[0]) and not tab.text[5].any()
    assert not tab.known[4:].any() and not tab.popularity[4:].any()
    assert tab.first_seen[4] == 200.0 and tab.category[4] == 0 and tab.ent_idx[4, 0] == 0
    assert len(before) == 4  # a reader's old table is unchanged
    feats = ranker_features(tab, np.ones(3, np.float32), np.array([0]), np.array([4, 5]), now=300.0)
    text_max = FEATURES.index("text_max")
    assert feats[0, text_max] > 0.99 and feats[1, text_max] == 0.0  # its text, like the history's


def test_appending_grows_a_buffer_instead_of_copying_the_table() -> None:
    tab = table()
    add(tab, None)
    buffer = tab.vectors.base
    for _ in range(20):
        add(tab, None)
    assert tab.vectors.base is buffer and len(tab.vectors) == 25
