"""Co-click model and recency-decayed clicks on hand-made impressions with known answers."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from newsrec.data.types import Impression
from newsrec.models.cooc import CoClick, RecencyState, build_coclick, click_events, decayed_clicks

ROW = {"A": 0, "B": 1, "C": 2, "D": 3}
H = 3600.0


def imp(user: str, hist: list[str], cands: list[str], labels: list[int], hour: float = 0.0) -> Impression:
    t = datetime.fromtimestamp(1_600_000_000 + hour * H, tz=UTC)
    return Impression(f"i{user}{hour}", user, t, hist, cands, labels)


def hand_made() -> list[Impression]:
    # u1 clicked A (history) and B (candidate); u2 clicked A and C; u3 clicked B only.
    # u1's second impression repeats its history: one history per user counts.
    return [
        imp("u1", ["A"], ["B", "D"], [1, 0]),
        imp("u1", ["A"], ["C", "D"], [0, 0], 1),
        imp("u2", ["A", "C"], ["D"], [0]),
        imp("u3", [], ["B", "C", "zz"], [1, 0, 1]),  # unknown id is skipped
    ]


def test_coclick_cosines_are_known() -> None:
    cc = build_coclick(hand_made(), ROW.get, 4)
    # users: A {u1,u2}, B {u1,u3}, C {u2}, D {}
    dense = cc.matrix.toarray()
    assert np.allclose((dense > 0).sum(1), [2, 2, 1, 0])
    assert np.allclose(np.linalg.norm(dense[:3], axis=1), 1.0) and not dense[3].any()
    mean, mx = cc.knn_scores(np.array([0]), np.array([1, 2, 3, -1]))
    # cos(A,B) = 1/2, cos(A,C) = 1/sqrt(2), D and unknown: 0
    assert mean == pytest.approx([0.5, 1 / np.sqrt(2), 0, 0])
    assert cc.knn_mean(np.array([0]), np.array([1, 2, 3, -1])) == pytest.approx(mean)
    mean, mx = cc.knn_scores(np.array([0, 1]), np.array([2]))
    assert mean[0] == pytest.approx((1 / np.sqrt(2) + 0) / 2) and mx[0] == pytest.approx(1 / np.sqrt(2))
    # no history, or rows added after the build (beyond the matrix): zeros
    assert not cc.knn_scores(np.array([], np.int64), np.array([0, 1]))[0].any()
    assert cc.knn_scores(np.array([0]), np.array([9]))[1].tolist() == [0.0]


def test_fast_mean_equals_pairwise_mean_on_a_random_matrix() -> None:
    rng = np.random.default_rng(1)
    imps = [
        imp(
            f"u{u}",
            [f"N{x}" for x in rng.choice(60, 8)],
            [f"N{x}" for x in rng.choice(60, 5)],
            [1, 0, 1, 0, 0],
        )
        for u in range(80)
    ]
    row = {f"N{i}": i for i in range(60)}
    cc = build_coclick(imps, row.get, 62)
    hist, cands = rng.choice(60, 12), np.append(rng.choice(62, 30), -1)
    assert cc.knn_mean(hist, cands) == pytest.approx(cc.knn_scores(hist, cands)[0], abs=1e-6)


def test_only_the_given_impressions_count() -> None:
    # the ranker's as-of-the-past features: a later impression's click must not appear
    past = build_coclick(hand_made()[:3], ROW.get, 4)
    assert past.matrix[1].nnz == 1  # B: u1 only (u3's click is in the 4th impression)


def test_full_rank_factors_reproduce_the_cosines(tmp_path: Path) -> None:
    cc = build_coclick(hand_made(), ROW.get, 4, factors=2)
    assert cc.factors is not None and cc.factors.shape == (4, 2)
    hist, cands = np.array([0, 2]), np.array([0, 1, 2, 3])
    x = cc.matrix.toarray()
    want = x[cands] @ x[hist].mean(0)  # rank 2 of a 3-user matrix with a repeated direction
    u, s, _ = np.linalg.svd(x)
    f = u[:, :2] * s[:2]
    assert cc.mf_scores(hist, cands) == pytest.approx(f[cands] @ f[hist].mean(0), abs=1e-5)
    assert np.corrcoef(cc.mf_scores(hist, cands), want)[0, 1] > 0.9
    assert cc.mf_max(hist, cands) == pytest.approx((f[cands] @ f[hist].T).max(1), abs=1e-5)
    cc.save(tmp_path / "c.safetensors")
    back = CoClick.load(tmp_path / "c.safetensors")
    assert np.array_equal(back.matrix.toarray(), cc.matrix.toarray())
    assert np.array_equal(back.factors, cc.factors)  # type: ignore[arg-type]
    assert not (tmp_path / "c.safetensors").read_bytes().startswith(b"\x80")  # not a pickle


def brute_decay(cr: np.ndarray, ct: np.ndarray, qr: np.ndarray, qt: np.ndarray, tau: float) -> np.ndarray:
    return np.array(
        [np.exp(-(t - ct[(cr == r) & (ct < t)]) / tau).sum() for r, t in zip(qr, qt, strict=True)]
    )


def test_decayed_clicks_match_brute_force_and_never_look_ahead() -> None:
    rng = np.random.default_rng(3)
    cr = rng.integers(0, 6, 400)
    ct = 1e9 + rng.uniform(0, 72 * H, 400)
    qr = rng.integers(0, 7, 300)
    qt = 1e9 + rng.uniform(-5 * H, 80 * H, 300)  # before, among and after the clicks
    qt[:5] = ct[:5]  # a query at exactly a click's time excludes that click
    qr[:5] = cr[:5]
    got = decayed_clicks(cr, ct, qr, qt, tau_hours=6.0)
    assert got == pytest.approx(brute_decay(cr, ct, qr, qt, 6 * H), rel=1e-9, abs=1e-12)


def test_recency_state_equals_the_exact_sum_after_the_last_click() -> None:
    rows, times = click_events(hand_made(), ROW.get)
    assert sorted(rows.tolist()) == [1, 1]  # B by u1 and u3; the unknown id has no row
    state = RecencyState.build(np.array([0, 0, 1]), np.array([0.0, 10 * H, 5 * H]), 4, tau_hours=24)
    now = 30 * H
    want = decayed_clicks(
        np.array([0, 0, 1]), np.array([0.0, 10 * H, 5 * H]), np.arange(4), np.full(4, now), 24
    )
    assert state.at(np.array([0, 1, 2, 3]), now) == pytest.approx(want, rel=1e-6)
    assert state.at(np.array([-1, 7]), now).tolist() == [0.0, 0.0]
