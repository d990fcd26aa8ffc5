"""The serving kernels against plain numpy: products and the ordered top-k."""

from __future__ import annotations

import numpy as np
import pytest

from newsrec.linalg import matmul, matmul_t, top_k


@pytest.mark.parametrize("k", [1, 7, 50, 64, 500])
def test_top_k_is_the_sorted_prefix_of_each_row(k: int) -> None:
    scores = np.random.default_rng(k).normal(size=(3, 64)).astype(np.float32)
    values, rows = top_k(scores, k)
    want = np.argsort(-scores, axis=1)[:, :k]
    assert rows.shape == values.shape == (3, min(k, 64))
    assert (rows == want).all()
    assert (values == np.take_along_axis(scores, want, axis=1)).all()


def test_top_k_puts_filtered_out_rows_last() -> None:
    scores = np.array([[0.5, -np.inf, 2.0, -np.inf, 1.0]], dtype=np.float32)
    values, rows = top_k(scores, 4)
    assert rows[0, :3].tolist() == [2, 4, 0]
    assert values[0, :3].tolist() == [2.0, 1.0, 0.5] and values[0, 3] == -np.inf


def test_products_match_numpy() -> None:
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(2, 8)).astype(np.float32), rng.normal(size=(5, 8)).astype(np.float32)
    assert np.allclose(matmul_t(a, b), a @ b.T) and np.allclose(matmul(a, b.T), a @ b.T)


def test_top_k_of_zero_is_empty() -> None:
    values, rows = top_k(np.ones((2, 5), np.float32), 0)
    assert values.shape == rows.shape == (2, 0)
