"""Small dense kernels for the serving hot paths (one request = a few small products).

numpy on one BLAS thread: `load_serving` limits BLAS to one thread per process (with
threadpoolctl), because OpenBLAS threads spin on small matrices when the machine is busy
(up to 20x slower on a loaded host). On one thread, numpy beats torch here on the
57,605 x 64 retrieval scan (0.79 vs 1.57 ms back to back, 1.63 vs 2.26 ms one call every
10 ms; bench/serve_handlers.py) and on the ranker's small products. `torch.topk` stays: it
returns the k best in order in one pass, where numpy needs argpartition plus a sort.
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
