"""Small dense kernels for the serving hot paths (one request = a few small products).

numpy on one BLAS thread: `load_serving` limits BLAS to one thread per process (with
threadpoolctl), because OpenBLAS threads spin on small matrices when the machine is busy
(up to 20x slower on a loaded host). On one thread, numpy beats torch here on the
57,605 x 64 retrieval scan (0.79 vs 1.57 ms back to back, 1.63 vs 2.26 ms one call every
10 ms; bench/serve_handlers.py) and on the ranker's small products. The top-k is numpy's
argpartition plus a sort of the k winners: cheaper than `torch.topk` over the scan's
57,605 scores (bench/serve_handlers.py, `top_k` vs `top_k_torch`).
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
    n = scores.shape[1]
    k = min(k, n)
    if k < n:
        # the k largest of each row, unordered, in one linear pass; then sort only those
        candidates = np.argpartition(scores, n - k, axis=1)[:, n - k :]
    else:
        candidates = np.broadcast_to(np.arange(n), scores.shape)
    values = np.take_along_axis(scores, candidates, axis=1)
    order = np.argsort(-values, axis=1, kind="stable")
    return np.take_along_axis(values, order, axis=1), np.take_along_axis(candidates, order, axis=1)
