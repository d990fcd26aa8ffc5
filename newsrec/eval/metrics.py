"""Ranking metrics with MIND's definitions, per impression, then averaged.

- AUC: Mann–Whitney U with average ranks (ties count half).
- MRR: sum over positives of 1/rank divided by the number of positives (as in
  MIND's evaluation script).
- nDCG@k: DCG with gain (2^label - 1) / log2(rank + 1) over the top k, divided by
  the ideal DCG@k.
Ranks for MRR/nDCG come from a stable sort of descending scores, so tied items
keep candidate order. Impressions with no positive or no negative are skipped
and counted.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np


def _average_ranks(x: np.ndarray) -> np.ndarray:
    order = np.argsort(x, kind="mergesort")
    xs = x[order]
    ranks = np.empty(len(x), dtype=np.float64)
    # Boundaries of runs of equal values get the mean of their 1-based positions.
    boundaries = np.concatenate([[0], np.flatnonzero(np.diff(xs)) + 1, [len(x)]])
    for a, b in zip(boundaries[:-1], boundaries[1:], strict=True):
        ranks[order[a:b]] = (a + b + 1) / 2.0
    return ranks


def auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Probability that a random positive outscores a random negative (ties: 1/2)."""
    labels = np.asarray(labels) > 0
    n_pos = int(labels.sum())
    n_neg = len(labels) - n_pos
    if n_pos == 0 or n_neg == 0:
        raise ValueError("AUC needs at least one positive and one negative")
    ranks = _average_ranks(np.asarray(scores, dtype=np.float64))
    return float((ranks[labels].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def _order(scores: np.ndarray) -> np.ndarray:
    return np.argsort(-np.asarray(scores, dtype=np.float64), kind="mergesort")


def mrr(labels: np.ndarray, scores: np.ndarray) -> float:
    y = np.asarray(labels, dtype=np.float64)[_order(scores)]
    return float((y / np.arange(1, len(y) + 1)).sum() / y.sum())


def dcg(labels: np.ndarray, scores: np.ndarray, k: int) -> float:
    y = np.asarray(labels, dtype=np.float64)[_order(scores)][:k]
    return float(((2**y - 1) / np.log2(np.arange(2, len(y) + 2))).sum())


def ndcg(labels: np.ndarray, scores: np.ndarray, k: int) -> float:
    ideal = dcg(labels, labels, k)
    return dcg(labels, scores, k) / ideal if ideal > 0 else 0.0


@dataclass
class MetricAccumulator:
    """Averages per-impression AUC, MRR, nDCG@5/10 and counts skipped impressions.
    With `keep`, `values[metric]` holds each added impression's value (NaN if skipped),
    for paired comparisons of scorers over the same impressions."""

    sums: dict[str, float] = field(
        default_factory=lambda: dict.fromkeys(("auc", "mrr", "ndcg5", "ndcg10"), 0.0)
    )
    n: int = 0
    skipped: int = 0
    keep: bool = False
    values: dict[str, list[float]] = field(default_factory=dict)

    def add(self, labels: np.ndarray, scores: np.ndarray) -> None:
        pos = int((labels > 0).sum())
        if pos == 0 or pos == len(labels):
            self.skipped += 1
            if self.keep:
                for k in self.sums:
                    self.values.setdefault(k, []).append(float("nan"))
            return
        one = {
            "auc": auc(labels, scores),
            "mrr": mrr(labels, scores),
            "ndcg5": ndcg(labels, scores, 5),
            "ndcg10": ndcg(labels, scores, 10),
        }
        for k, v in one.items():
            self.sums[k] += v
            if self.keep:
                self.values.setdefault(k, []).append(v)
        self.n += 1

    def result(self) -> dict[str, float | None]:
        """Means (None for an empty slice: strict JSON has no NaN), counts."""
        out: dict[str, float | None] = {k: (v / self.n if self.n else None) for k, v in self.sums.items()}
        out["impressions"] = self.n
        out["skipped"] = self.skipped
        return out


def impression_metrics(pairs: Iterable[tuple[np.ndarray, np.ndarray]]) -> dict[str, float | None]:
    """Mean metrics over (labels, scores) pairs, one per impression."""
    acc = MetricAccumulator()
    for labels, scores in pairs:
        acc.add(np.asarray(labels), np.asarray(scores))
    return acc.result()


def recall_hit_at_k(
    ranked: np.ndarray, positives: list[np.ndarray], ks: Iterable[int]
) -> dict[str, float | None]:
    """Retrieval metrics: `ranked` (U, Kmax) top ids per user; `positives` the clicked
    ids per user (users without positives are skipped). Recall@K = |top-K ∩ pos| / |pos|,
    Hit@K = 1 if any positive is in the top K."""
    out: dict[str, float | None] = {}
    keep = [i for i, p in enumerate(positives) if len(p)]
    for k in ks:
        rec, hit = [], []
        for i in keep:
            found = np.isin(positives[i], ranked[i, :k]).sum()
            rec.append(found / len(positives[i]))
            hit.append(float(found > 0))
        out[f"recall{k}"] = float(np.mean(rec)) if rec else None
        out[f"hit{k}"] = float(np.mean(hit)) if hit else None
    out["retrieval_users"] = len(keep)
    return out
