"""Implicit-feedback ALS: objective, fold-in, recovery of a planted world, persistence."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from newsrec.data.types import Impression
from newsrec.eval.metrics import auc
from newsrec.models.als import (
    ALSModel,
    ALSParams,
    _solve_side,
    build_als,
    fit_als,
    objective,
)
from newsrec.models.cooc import interaction_counts


def planted(n_users: int = 300, n_items: int = 200, rank: int = 4, per_user: int = 12, seed: int = 0):
    """Clicks drawn from a rank-`rank` taste model: each user clicks `per_user + 1` of the
    items with the highest affinity plus noise; the last click of each user is held out."""
    rng = np.random.default_rng(seed)
    u = rng.standard_normal((n_users, rank))
    v = rng.standard_normal((n_items, rank))
    aff = u @ v.T + 0.3 * rng.standard_normal((n_users, n_items))
    top = np.argsort(-aff, axis=1)[:, : per_user + 1]
    picks = np.array([rng.permutation(row) for row in top])
    train, held = picks[:, :-1], picks[:, -1]
    counts = sp.csr_matrix(
        (np.ones(train.size, np.float32), (np.repeat(np.arange(n_users), per_user), train.ravel())),
        shape=(n_users, n_items),
    )
    return counts, train, held, rng


def test_objective_decreases_every_iteration() -> None:
    counts, *_ = planted()
    values = []
    for it in range(1, 6):
        p = ALSParams(factors=8, regularization=0.5, alpha=4.0, iterations=it, seed=3)
        m, x = fit_als(counts, p)
        values.append(objective(counts, x, m.item_factors, p.alpha, p.regularization))
    assert all(b < a for a, b in zip(values, values[1:], strict=False)), values


def test_cg_side_with_k_steps_is_the_exact_solve() -> None:
    # CG on a k-dimensional SPD system is exact after k steps: one side of the training
    # equals the fold-in (exact solve) of every row against the fixed other side
    counts, *_ = planted(n_users=60, n_items=50)
    rng = np.random.default_rng(2)
    y = rng.standard_normal((50, 6)).astype(np.float32)
    x = np.zeros((60, 6), np.float32)
    c = sp.csr_matrix(counts * 4.0)  # D = alpha * r, alpha 4
    _solve_side(c, y, x, 0.5, steps=12)
    m = ALSModel(y, alpha=4.0, regularization=0.5)
    for u in range(10):
        row = counts[u]
        hist = np.repeat(row.indices, row.data.astype(np.int64))
        assert x[u] == pytest.approx(m.fold_in(hist), rel=1e-3, abs=1e-4)


def test_fold_in_of_a_training_user_reproduces_its_factor() -> None:
    counts, train, *_ = planted()
    p = ALSParams(factors=8, regularization=0.5, alpha=4.0, iterations=25, seed=0)
    m, x = fit_als(counts, p)
    for u in range(20):
        f = m.fold_in(train[u])
        cos = f @ x[u] / (np.linalg.norm(f) * np.linalg.norm(x[u]))
        assert cos > 0.995 and np.linalg.norm(f - x[u]) < 0.05 * np.linalg.norm(x[u]), (u, cos)


def test_planted_low_rank_world_is_recovered() -> None:
    counts, train, held, rng = planted()
    m, _ = fit_als(counts, ALSParams(factors=8, regularization=0.5, alpha=4.0, iterations=15))
    aucs = []
    for u in range(counts.shape[0]):
        seen = set(train[u]) | {held[u]}
        negs = rng.choice([i for i in range(counts.shape[1]) if i not in seen], 19, replace=False)
        cands = np.concatenate([[held[u]], negs])
        aucs.append(auc(np.r_[1, np.zeros(19)], m.scores(train[u], cands)))
    assert np.mean(aucs) > 0.9


def test_empty_history_and_unknown_rows_give_zeros() -> None:
    counts, *_ = planted(n_users=40, n_items=30)
    m, _ = fit_als(counts, ALSParams(factors=4, iterations=3))
    assert not m.fold_in(np.array([], np.int64)).any()
    assert not m.fold_in(np.array([-1, 99])).any()  # unknown / beyond the model: skipped
    s = m.scores(np.array([0, 1]), np.array([2, -1, 30, 99]))
    assert s.shape == (4,) and s[1] == 0 and s[2] == 0 and s[3] == 0 and s[0] != 0
    assert not m.scores(np.array([], np.int64), np.array([0, 1])).any()


def test_items_without_clicks_have_zero_factors() -> None:
    counts = sp.csr_matrix(np.array([[1, 0, 1, 0], [1, 1, 0, 0], [0, 1, 1, 0]], np.float32))
    m, _ = fit_als(counts, ALSParams(factors=2, iterations=4))
    assert not m.item_factors[3].any() and m.item_factors[:3].any()


def test_deterministic_for_a_seed_and_save_load_round_trip(tmp_path: Path) -> None:
    counts, train, *_ = planted(n_users=80, n_items=60)
    p = ALSParams(factors=6, iterations=4, seed=5)
    a, _ = fit_als(counts, p)
    b, _ = fit_als(counts, p)
    c, _ = fit_als(counts, ALSParams(factors=6, iterations=4, seed=6))
    assert np.array_equal(a.item_factors, b.item_factors)
    assert not np.array_equal(a.item_factors, c.item_factors)
    a.save(tmp_path / "als.safetensors")
    back = ALSModel.load(tmp_path / "als.safetensors")
    assert back.alpha == a.alpha and back.regularization == a.regularization
    assert np.array_equal(back.item_factors, a.item_factors)
    cands = np.arange(60)
    assert np.array_equal(back.scores(train[0], cands), a.scores(train[0], cands))


def test_interactions_are_the_coclick_users_and_clicks() -> None:
    t = datetime.fromtimestamp(1_600_000_000, tz=UTC)
    row = {"A": 0, "B": 1, "C": 2, "D": 3}
    imps = [
        Impression("1", "u1", t, ["A"], ["B", "D"], [1, 0]),
        Impression("2", "u1", t, ["A"], ["B", "C"], [1, 0]),  # B clicked twice; history once
        Impression("3", "u2", t, ["A", "C"], ["D"], [0]),
        Impression("4", "u3", t, [], ["B", "zz"], [1, 1]),  # unknown id skipped
    ]
    m = interaction_counts(imps, row.get, 4).toarray()
    assert m.tolist() == [[1, 2, 0, 0], [1, 0, 1, 0], [0, 1, 0, 0]]
    model = build_als(imps, row.get, 4, ALSParams(factors=2, iterations=3), progress=False)
    assert model.item_factors.shape == (4, 2) and not model.item_factors[3].any()


@pytest.mark.parametrize("reg", [0.1, 2.0])
def test_fold_in_is_the_exact_least_squares_solution(reg: float) -> None:
    # brute force over the full (items) confidence-weighted regression for one user
    rng = np.random.default_rng(0)
    y = rng.standard_normal((30, 5)).astype(np.float32)
    m = ALSModel(y, alpha=3.0, regularization=reg)
    hist = np.array([2, 7, 7, 11])
    p = np.zeros(30)
    c = np.ones(30)
    for r in hist:
        p[r] = 1.0
        c[r] += 3.0
    yd = y.astype(np.float64)
    want = np.linalg.solve(yd.T @ (c[:, None] * yd) + reg * np.eye(5), yd.T @ (c * p))
    assert m.fold_in(hist) == pytest.approx(want, rel=1e-4, abs=1e-5)
