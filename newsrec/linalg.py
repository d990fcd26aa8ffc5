"""Small dense kernels for the serving hot paths (one request = a few small products).

numpy on one BLAS thread: `load_serving` limits BLAS to one thread per process (with
threadpoolctl), because OpenBLAS threads spin on small matrices when the machine is busy
(up to 20x slower on a loaded host). On one thread, numpy beats torch here on the
57,605 x 64 retrieval scan (0.79 vs 1.57 ms back to back, 1.63 vs 2.26 ms one call every
10 ms; bench/serve_handlers.py) and on the ranker's small products. The top-k is
numpy's argpartition plus a sort of the k winners, row by row: faster than `torch.topk`
over the scan's 57,605 scores (bench/serve_handlers.py, `top_k` vs `top_k_torch`), where
the same on 2-D arrays with `take_along_axis` was slower than torch.
"""

from __future__ import annotations

import numpy as np


def matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """`a @ b` (float32 in, float32 out)."""
    return np.matmul(a, b)


def matmul_t(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """`a @ b.T` without copying `b` (BLAS reads the transposed view in place):
    queries against a whole vector table."""
    return np.matmul(a, b.T)


def top_k(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(values, indices) of the `k` largest entries of each row of a 2-D array, best first.

    Equal scores come in no promised order."""
    rows, n = scores.shape
    k = min(k, n)
    values = np.empty((rows, k), dtype=scores.dtype)
    indices = np.empty((rows, k), dtype=np.int64)
    if k == 0:
        return values, indices
    for i, row in enumerate(scores):  # serving searches one row; 1-D calls are the cheap ones
        # the k largest, unordered, in one linear pass; then sort only those
        best = np.argpartition(row, n - k)[n - k :] if k < n else np.arange(n)
        order = best[np.argsort(-row[best], kind="stable")]
        values[i], indices[i] = row[order], order
    return values, indices
