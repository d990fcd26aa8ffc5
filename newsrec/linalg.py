"""Small dense kernels for the serving hot paths (one request = a few small products).

torch on one intra-op thread rather than numpy: OpenBLAS starts its own threads and
they spin on small matrices when the machine is busy, which cost up to 20x on a
loaded host; and `torch.topk` returns the k best in order in one pass, where numpy
needs argpartition plus a sort.
"""

from __future__ import annotations

import numpy as np
import torch


def matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """`a @ b` as float32 numpy, computed by torch."""
    return (torch.from_numpy(np.ascontiguousarray(a)) @ torch.from_numpy(np.ascontiguousarray(b))).numpy()


def matmul_t(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """`a @ b.T` without copying `b` (a transposed view is free for torch, not for
    `np.ascontiguousarray`): queries against a whole vector table."""
    return (torch.from_numpy(np.ascontiguousarray(a)) @ torch.from_numpy(b).T).numpy()


def top_k(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(values, indices) of the `k` largest entries of each row of a 2-D array, best first."""
    values, indices = torch.topk(torch.from_numpy(scores), min(k, scores.shape[1]), dim=1, sorted=True)
    return values.numpy(), indices.numpy()
