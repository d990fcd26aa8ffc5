"""Metric functions against hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest

from newsrec.eval.metrics import MetricAccumulator, auc, mrr, ndcg, recall_hit_at_k


def test_auc_perfect_and_reversed() -> None:
    assert auc(np.array([1, 0, 0]), np.array([0.9, 0.1, 0.2])) == 1.0
    assert auc(np.array([1, 0, 0]), np.array([0.0, 0.1, 0.2])) == 0.0


def test_auc_with_ties_counts_half() -> None:
    # pos scores {0.5, 0.2}, neg {0.5, 0.1}: pairs (0.5>0.5 tie=0.5)(0.5>0.1=1)(0.2<0.5=0)(0.2>0.1=1) -> 2.5/4
    assert auc(np.array([1, 0, 1, 0]), np.array([0.5, 0.5, 0.2, 0.1])) == pytest.approx(0.625)
    assert auc(np.array([1, 0]), np.array([0.3, 0.3])) == 0.5


def test_auc_needs_both_classes() -> None:
    with pytest.raises(ValueError):
        auc(np.array([1, 1]), np.array([0.1, 0.2]))


def test_mrr_mind_definition() -> None:
    # order by score: c(1), a(0), b(1) -> (1/1 + 1/3) / 2
    assert mrr(np.array([0, 1, 1]), np.array([0.5, 0.1, 0.9])) == pytest.approx((1 + 1 / 3) / 2)


def test_ndcg_hand_computed() -> None:
    labels = np.array([0, 1, 0, 1])
    scores = np.array([0.4, 0.3, 0.2, 0.1])  # positives at ranks 2 and 4
    dcg = 1 / math.log2(3) + 1 / math.log2(5)
    ideal = 1 / math.log2(2) + 1 / math.log2(3)
    assert ndcg(labels, scores, 10) == pytest.approx(dcg / ideal)
    assert ndcg(labels, scores, 2) == pytest.approx((1 / math.log2(3)) / ideal)
    assert ndcg(labels, labels.astype(float), 5) == pytest.approx(1.0)


def test_ties_keep_candidate_order_for_rank_metrics() -> None:
    # all tied: stable order, the positive is second -> MRR 1/2
    assert mrr(np.array([0, 1, 0]), np.zeros(3)) == pytest.approx(0.5)


def test_accumulator_skips_and_counts() -> None:
    acc = MetricAccumulator()
    acc.add(np.array([1, 0]), np.array([0.9, 0.1]))
    acc.add(np.array([1, 1]), np.array([0.9, 0.1]))  # no negative
    acc.add(np.array([0, 0]), np.array([0.9, 0.1]))  # no positive
    acc.add(np.array([0, 1]), np.array([0.9, 0.1]))
    r = acc.result()
    assert r["impressions"] == 2 and r["skipped"] == 2
    assert r["auc"] == pytest.approx(0.5)
    assert r["mrr"] == pytest.approx(0.75)


def test_recall_and_hit_at_k() -> None:
    ranked = np.array([[5, 3, 9, 1], [2, 4, 6, 8]])
    r = recall_hit_at_k(ranked, [np.array([3, 1]), np.array([7]), np.array([])], ks=(2, 4))
    assert r["recall2"] == pytest.approx((0.5 + 0) / 2)
    assert r["recall4"] == pytest.approx((1.0 + 0) / 2)
    assert r["hit2"] == pytest.approx(0.5)
    assert r["retrieval_users"] == 2
