"""Impressions as flat arrays of feature rows, and the training batches built from them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from newsrec.data.types import Impression
from newsrec.models.features import NewsFeatures


@dataclass
class ImpressionArrays:
    """Impressions with rows instead of ids. Candidates are ragged: impression i owns
    `cand_rows[offsets[i]:offsets[i+1]]`; labels are -1 for unlabeled (test) data."""

    impression_ids: list[str]
    user_ids: list[str]
    hist: np.ndarray  # (I, H) int64, most recent kept, 0 = padding
    offsets: np.ndarray  # (I + 1,) int64
    cand_rows: np.ndarray  # (C,) int64
    labels: np.ndarray  # (C,) int8
    times: np.ndarray  # (I,) float64 epoch seconds

    def __len__(self) -> int:
        return len(self.impression_ids)

    def candidates(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        a, b = self.offsets[i], self.offsets[i + 1]
        return self.cand_rows[a:b], self.labels[a:b]

    def subset(self, idx: np.ndarray) -> ImpressionArrays:
        parts = [self.candidates(int(i)) for i in idx]
        lens = np.array([len(p[0]) for p in parts], dtype=np.int64)
        return ImpressionArrays(
            [self.impression_ids[i] for i in idx],
            [self.user_ids[i] for i in idx],
            self.hist[idx],
            np.concatenate([[0], np.cumsum(lens)]).astype(np.int64),
            np.concatenate([p[0] for p in parts]) if parts else np.zeros(0, np.int64),
            np.concatenate([p[1] for p in parts]) if parts else np.zeros(0, np.int8),
            self.times[idx],
        )


def to_arrays(impressions: Sequence[Impression], feats: NewsFeatures, max_history: int) -> ImpressionArrays:
    """Convert impressions; histories keep the `max_history` most recent clicks."""
    n = len(impressions)
    hist = np.zeros((n, max_history), dtype=np.int64)
    lens = np.zeros(n, dtype=np.int64)
    cands: list[int] = []
    labels: list[int] = []
    row = feats.row
    for i, imp in enumerate(impressions):
        h = [row[x] for x in imp.history[-max_history:] if x in row]
        hist[i, : len(h)] = h
        lens[i] = len(imp.candidates)
        cands.extend(row.get(c, 0) for c in imp.candidates)
        labels.extend(imp.labels if imp.labels else [-1] * len(imp.candidates))
    return ImpressionArrays(
        [imp.impression_id for imp in impressions],
        [imp.user_id for imp in impressions],
        hist,
        np.concatenate([[0], np.cumsum(lens)]).astype(np.int64),
        np.array(cands, dtype=np.int64),
        np.array(labels, dtype=np.int8),
        np.array([imp.time.timestamp() for imp in impressions], dtype=np.float64),
    )


@dataclass
class Samples:
    """One training sample per clicked candidate: (impression, positive row), plus the
    impression's shown negatives as a ragged list."""

    imp: np.ndarray  # (S,) impression index
    pos: np.ndarray  # (S,) positive row
    neg_offsets: np.ndarray  # (I + 1,)
    neg_rows: np.ndarray


def make_samples(arr: ImpressionArrays) -> Samples:
    imp_idx = np.repeat(np.arange(len(arr)), np.diff(arr.offsets))
    pos_mask = arr.labels == 1
    neg_mask = arr.labels == 0
    neg_counts = np.bincount(imp_idx[neg_mask], minlength=len(arr))
    return Samples(
        imp=imp_idx[pos_mask],
        pos=arr.cand_rows[pos_mask],
        neg_offsets=np.concatenate([[0], np.cumsum(neg_counts)]).astype(np.int64),
        neg_rows=arr.cand_rows[neg_mask],
    )


def sample_negatives(s: Samples, imps: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """(B, k) shown negatives per impression, sampled with replacement; 0 where none."""
    start = s.neg_offsets[imps]
    count = s.neg_offsets[imps + 1] - start
    pick = (rng.random((len(imps), k)) * np.maximum(count, 1)[:, None]).astype(np.int64)
    rows = (
        s.neg_rows[np.minimum(start[:, None] + pick, max(len(s.neg_rows) - 1, 0))] if len(s.neg_rows) else 0
    )
    return np.where(count[:, None] > 0, rows, 0).astype(np.int64)
