"""Baseline scorers, paired differences and strict JSON on hand-made data."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from newsrec.data.types import Impression
from newsrec.eval.baselines import baseline_scores, build_baselines
from newsrec.eval.metrics import MetricAccumulator
from newsrec.eval.paired import compare_to_best, paired_diff, strict, write_json

ROW = {"A": 0, "B": 1, "C": 2, "D": 3}
H = 3600.0


def hand_made() -> list[Impression]:
    """u1 clicked A (history) and B; u2 has A and C in its history; u3 clicked B."""
    t = datetime.fromtimestamp(1_600_000_000, tz=UTC)
    return [
        Impression("1", "u1", t, ["A"], ["B", "D"], [1, 0]),
        Impression("2", "u2", t, ["A", "C"], ["D"], [0]),
        Impression("3", "u3", t, [], ["B", "C", "zz"], [1, 0, 1]),
    ]


def enc(hist: list[int], cands: list[int], time: float) -> SimpleNamespace:
    return SimpleNamespace(hist=np.array(hist, np.int64), cands=np.array(cands, np.int64), time=time)


def test_baseline_scores_are_known() -> None:
    text = np.eye(4, dtype=np.float16)
    text[1] = np.array([0.6, 0.8, 0, 0], np.float16)
    data = build_baselines(hand_made(), ROW.get, 4, text)
    t0 = 1_600_000_000.0
    e = [enc([0], [1, 2, 3, -1], t0 + 48 * H), enc([], [1, 2], t0 - H)]
    s = baseline_scores(data, e)
    assert s["popularity"][0].tolist() == [2.0, 0.0, 0.0, 0.0]  # B by u1 and u3; C, D none
    # both clicks at hour 0, 48 h before: exp(-48 / 24) each
    assert s["recency_popularity"][0] == pytest.approx([2 * np.exp(-2), 0, 0, 0])
    assert s["recency_popularity"][1].tolist() == [0.0, 0.0]  # before every click
    assert s["item_knn"][0] == pytest.approx([0.5, 1 / np.sqrt(2), 0, 0])
    assert s["item_knn"][1].tolist() == [0.0, 0.0]  # empty history
    assert s["als"][1].tolist() == [0.0, 0.0] and s["als"][0][3] == 0.0  # no history; D never clicked
    assert s["text_knn"][0] == pytest.approx([0.6, 0, 0, 0], abs=1e-3)
    assert set(s) == {"popularity", "recency_popularity", "item_knn", "cooc_mf", "als", "text_knn"}


def test_paired_diff_and_best_baseline() -> None:
    a = np.array([0.9, 0.8, np.nan, 0.7])
    b = np.array([0.8, 0.8, 0.5, 0.5])
    d = paired_diff(a, b)
    diffs = np.array([0.1, 0.0, 0.2])
    assert d["n"] == 3 and d["diff"] == pytest.approx(0.1)
    assert d["se"] == pytest.approx(diffs.std(ddof=1) / np.sqrt(3))
    assert paired_diff([np.nan], [0.5]) == {"diff": None, "se": None, "z": None, "n": 0}
    vals = {n: {"auc": v, "mrr": v, "ndcg10": v} for n, v in {"m": a, "b1": b, "b2": b - 0.2}.items()}
    c = compare_to_best(vals, {"m": 0.8, "b1": 0.65, "b2": 0.45}, ["m"], ["b1", "b2"])
    assert c["best_baseline"] == "b1" and c["pairs"]["m"]["auc"]["diff"] == pytest.approx(0.1)
    assert c["verdict"].startswith("best baseline: b1; m ")


def test_empty_slice_is_null_and_json_is_strict(tmp_path: Path) -> None:
    r = MetricAccumulator().result()
    assert r["auc"] is None and r["impressions"] == 0
    obj = {"a": float("nan"), "b": [np.float32(1.5), float("inf")], "c": r}
    write_json(tmp_path / "x.json", obj)

    def reject(c: str) -> None:
        raise ValueError(f"non-strict constant {c}")

    back = json.loads((tmp_path / "x.json").read_text(), parse_constant=reject)
    assert back == {"a": None, "b": [1.5, None], "c": strict(r)}
