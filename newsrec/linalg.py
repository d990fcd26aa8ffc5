"""Small dense kernels for the serving hot paths (one request = a few small products).

numpy on one BLAS thread: `load_serving` limits BLAS to one thread per process (with
threadpoolctl), because OpenBLAS threads spin on small matrices when the machine is busy
(up to 20x slower on a loaded host). On one thread, numpy beat torch here on every
product of the request path (the 57,605 x 64 retrieval scan 0.74-0.91 ms vs 1.17-1.31 ms;
the ranker's 200 x 64 products 4-22 us vs 12-32 us). `torch.topk` stays: it returns the
k best in order in one pass, where numpy needs argpartition plus a sort.
"""

from __future__ import annotations

import numpy as np
import torch


def matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """`a @ b` (float32 in, float32 out)."""
    return np.matmul(a, b)


def matmul_t(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """`a @ b.T` without copying `b` (BLAS reads the transposed view in place):
    queries against a whole vector table."""
    return np.matmul(a, b.T)


def top_k(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(values, indices) of the `k` largest entries of each row of a 2-D array, best first."""
    values, indices = torch.topk(torch.from_numpy(scores), min(k, scores.shape[1]), dim=1, sorted=True)
    return values.numpy(), indices.numpy()
