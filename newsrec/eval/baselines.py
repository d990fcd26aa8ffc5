"""Baseline scorers on the same encoded impressions as the models.

- `popularity`: train click counts.
- `recency_popularity`: train clicks decayed by age at the impression's time
  (`exp(-age / 24 h)`), only clicks strictly before that time.
- `item_knn`: mean cosine of the candidate's co-click vector (the users who clicked it
  in train: histories + clicked candidates) with the history's.
- `cooc_mf`: truncated SVD of the same co-click matrix, the user folded in as the mean
  of the history's factors (a matrix-factorisation baseline without training).
- `als`: implicit-feedback ALS (Hu, Koren & Volinsky 2008) trained on the same users and
  clicks, the impression's user folded in from the history by the exact least-squares
  solve (`newsrec.models.als`; what "ALS with the history folded in" means in CF papers).
- `text_knn`: mean cosine of the raw text embeddings, history vs candidate (when the
  artifact carries them).

Everything is built from the labeled train impressions only, with the artifact's row
order, so any run on the same data gets the same baseline rows.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from newsrec.data.types import Impression
from newsrec.models.als import ALSModel, ALSParams, build_als
from newsrec.models.cooc import CoClick, build_coclick, click_events, decayed_clicks
from newsrec.models.ranker import text_knn

MF_FACTORS = 64
BASELINES = ("popularity", "recency_popularity", "item_knn", "cooc_mf", "als", "text_knn")


class _Enc(Protocol):
    """What a baseline reads of an encoded impression (`newsrec.train.ranker.Encoded`)."""

    hist: np.ndarray
    cands: np.ndarray
    time: float


@dataclass
class BaselineData:
    """Train-derived state of the baselines, in one artifact's row order."""

    popularity: np.ndarray  # (N,) train clicks
    click_rows: np.ndarray
    click_times: np.ndarray
    coclick: CoClick
    text: np.ndarray | None
    als: ALSModel | None = None


def build_baselines(
    train: Sequence[Impression],
    row_of: Callable[[str], int | None],
    n_items: int,
    text: np.ndarray | None,
    seed: int = 0,
) -> BaselineData:
    rows, times = click_events(train, row_of)
    pop = np.bincount(rows, minlength=n_items)[:n_items].astype(np.float32)
    cooc = build_coclick(train, row_of, n_items, MF_FACTORS, seed)
    als = build_als(train, row_of, n_items, ALSParams(seed=seed))
    return BaselineData(pop, rows, times, cooc, text, als)


def _masked(values: np.ndarray, cands: np.ndarray) -> np.ndarray:
    ok = (cands >= 0) & (cands < len(values))
    return (values[np.where(ok, cands, 0)] * ok).astype(np.float64)


def baseline_scores(data: BaselineData, enc: Sequence[_Enc]) -> dict[str, list[np.ndarray]]:
    """Scores per impression of every baseline (text_knn only with text vectors)."""
    skip = {"text_knn"} | ({"als"} if data.als is None else set())
    out: dict[str, list[np.ndarray]] = {name: [] for name in BASELINES if name not in skip}
    lens = np.array([len(e.cands) for e in enc], dtype=np.int64)
    q_rows = np.concatenate([e.cands for e in enc]) if enc else np.zeros(0, np.int64)
    q_times = np.repeat([e.time for e in enc], lens) if enc else np.zeros(0)
    ok = q_rows >= 0
    rec = np.zeros(len(q_rows))
    rec[ok] = decayed_clicks(data.click_rows, data.click_times, q_rows[ok], q_times[ok])
    bounds = np.concatenate([[0], np.cumsum(lens)])
    for i, e in enumerate(enc):
        out["popularity"].append(_masked(data.popularity, e.cands))
        out["recency_popularity"].append(rec[bounds[i] : bounds[i + 1]])
        out["item_knn"].append(data.coclick.knn_mean(e.hist, e.cands).astype(np.float64))
        out["cooc_mf"].append(data.coclick.mf_scores(e.hist, e.cands).astype(np.float64))
        if data.als is not None:
            out["als"].append(data.als.scores(e.hist, e.cands).astype(np.float64))
    if data.text is not None:
        out["text_knn"] = [text_knn(data.text, e.hist, e.cands)[0].astype(np.float64) for e in enc]
    return out
