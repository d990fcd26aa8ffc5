"""Fusion ranker: cross features of (user, history, candidate, time) and an MLP.

The features are computed with numpy from the serving artifact's arrays, so
training (`newsrec.train.ranker`) and serving compute exactly the same thing.
News and user vectors are unit length, so `dot` is also the cosine.

Collaborative features come from the table's optional co-click model (item-kNN mean,
the factorisation score and its max over the history, `newsrec.models.cooc`), its
implicit-feedback ALS model (the user folded in from the history, `newsrec.models.als`),
its recency state (clicks decayed to the request time) and the raw text vectors (text-kNN
mean/max). `rank_*` features
are the candidate's percentile within its own impression: the ranker compares
candidates of one list, and a score's scale differs between users.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from newsrec.linalg import matmul
from newsrec.models.als import ALSModel
from newsrec.models.cooc import CoClick, RecencyState

FEATURES = (
    "dot",  # two-tower score (= cosine: both vectors are unit length)
    "hist_max_cos",  # closest history article
    "hist_mean_cos",
    "category_share",  # share of history articles in the candidate's category
    "entity_overlap",  # share of the candidate's entities seen in the history
    "log_popularity",  # log(1 + train clicks)
    "log_age_hours",  # log(1 + hours since first seen), at impression time
    "age_missing",
    "cold",  # no ID embedding of its own (not seen in train)
    "has_entities",
    "log_history_len",
    "knn_mean",  # mean co-click cosine with the history (item-kNN)
    "mf",  # factorisation of the co-click matrix, user folded in from the history
    "mf_max",  # closest history article in the factor space
    "als",  # implicit-feedback ALS: user folded in from the history, dot with the candidate
    "text_mean",  # raw text-embedding cosine with the history (text-kNN), mean / max
    "text_max",
    "log_recency_pop",  # log(1 + clicks decayed by age at request time)
    "rank_dot",  # percentile of the score among the impression's candidates
    "rank_knn",
    "rank_mf",
    "rank_text",
    "rank_popularity",
    "rank_recency",
    "rank_als",
)
# feature -> the feature whose within-impression percentile it is
RANKED = {
    "rank_dot": "dot",
    "rank_knn": "knn_mean",
    "rank_mf": "mf",
    "rank_text": "text_mean",
    "rank_popularity": "log_popularity",
    "rank_recency": "log_recency_pop",
    "rank_als": "als",
}


@dataclass
class NewsTable:
    """Per-article arrays in serving row order."""

    vectors: np.ndarray  # (N, D) float32
    category: np.ndarray  # (N,) int64
    ent_idx: np.ndarray  # (N, M) int64, -1 padding
    popularity: np.ndarray  # (N,) float32
    first_seen: np.ndarray  # (N,) float64 epoch seconds, nan unknown
    known: np.ndarray  # (N,) bool
    text: np.ndarray | None = None  # (N, d) unit raw text vectors (float16 in the artifact)
    coclick: CoClick | None = None
    recency: RecencyState | None = None
    als: ALSModel | None = None


def extend_table(
    table: NewsTable,
    vectors: np.ndarray,
    category: np.ndarray,
    ent_idx: np.ndarray,
    first_seen: np.ndarray,
    text: np.ndarray | None = None,
) -> None:
    """Append rows for articles added after training (upserted, cold: no clicks, not known),
    scored from their content: news-tower vector, category, entities, first-seen time and,
    when the table has text vectors, their unit text vector (zeros when `text` is None or of
    another dimension). Co-click and recency state read rows beyond their own as no clicks.
    Each array becomes a longer view (`_append`): a reader holding the old one, or row
    numbers from before, sees the same rows."""
    n = len(vectors)
    if table.text is not None and len(table.text) == len(table.vectors):
        rows = np.zeros((n, table.text.shape[1]), np.float32)
        if text is not None and text.shape == rows.shape:
            rows = unit_rows(text)
        table.text = _append(table.text, rows)
    table.vectors = _append(table.vectors, vectors)
    table.category = _append(table.category, category)
    table.ent_idx = _append(table.ent_idx, ent_idx)
    table.popularity = _append(table.popularity, np.zeros(n, np.float32))
    table.first_seen = _append(table.first_seen, first_seen)
    table.known = _append(table.known, np.zeros(n, bool))


def unit_rows(text: np.ndarray) -> np.ndarray:
    """Rows of `text` scaled to unit length (zero rows stay zero), float32: the table's
    raw text vectors are unit, so text-kNN is a dot product."""
    norms = np.linalg.norm(text, axis=-1, keepdims=True)
    return (text / np.maximum(norms, 1e-12)).astype(np.float32)


def _append(arr: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """`arr` followed by `rows`, as a prefix view of a buffer with spare rows: appending
    one row costs a row, not a copy of the table (an artifact of 100k articles is ~180 MB
    with its text vectors), and the buffer grows by an eighth when full. One writer at a
    time, always appending to the latest view (`ArtifactModel.add_news` holds a lock)."""
    n, k = len(arr), len(rows)
    base = arr.base
    # Only a buffer made here, and only from its start: a view into someone else's array
    # must never have its following rows overwritten.
    if (
        isinstance(base, np.ndarray)
        and _BUFFERS.get(id(base)) is base
        and len(base) >= n + k
        and base.ctypes.data == arr.ctypes.data
    ):
        buf: np.ndarray = base
    else:
        buf = np.empty((n + k + max(64, n // 8), *arr.shape[1:]), dtype=arr.dtype)
        buf[:n] = arr
        _BUFFERS[id(buf)] = buf
    buf[n : n + k] = rows
    return buf[: n + k]


# Buffers `_append` allocated (by id; entries go with their arrays).
_BUFFERS: weakref.WeakValueDictionary[int, np.ndarray] = weakref.WeakValueDictionary()


def ranker_features(
    table: NewsTable,
    user: np.ndarray,
    hist_rows: np.ndarray,
    cand_rows: np.ndarray,
    now: float | None,
    popularity: np.ndarray | None = None,
    cold: np.ndarray | None = None,
) -> np.ndarray:
    """(C, len(FEATURES)) float32 features. Candidate rows of -1 are unknown
    articles (zero vector, no metadata). `popularity` overrides the click counts
    per candidate and `cold` the cold flags (ranker training uses what was known before
    its holdout impressions, as serving only knows the past)."""
    c = len(cand_rows)
    valid = cand_rows >= 0
    rows = np.where(valid, cand_rows, 0)
    cv = table.vectors[rows] * valid[:, None]
    f = np.zeros((c, len(FEATURES)), dtype=np.float32)
    f[:, 0] = matmul(cv, user.astype(np.float32))
    if len(hist_rows):
        sims = matmul(cv, table.vectors[hist_rows].T)
        f[:, 1] = sims.max(1)
        f[:, 2] = sims.mean(1)
        hist_cat = table.category[hist_rows]
        f[:, 3] = (table.category[rows][:, None] == hist_cat[None, :]).mean(1) * valid
        hist_ents = table.ent_idx[hist_rows]
        ce = table.ent_idx[rows]
        has = (ce >= 0) & valid[:, None]
        n_ent = has.sum(1)
        # Membership by a boolean table over the entity rows in play: np.unique + np.isin
        # sorted both sides and cost the ranker a fifth of its call. Padding (-1) reads the
        # table's last slot, which `has` masks out.
        in_history = np.zeros(max(int(ce.max(initial=-1)), int(hist_ents.max(initial=-1)), 0) + 1, dtype=bool)
        in_history[hist_ents[hist_ents >= 0]] = True
        f[:, 4] = (in_history[ce] & has).sum(1) / np.maximum(n_ent, 1)
    else:
        n_ent = ((table.ent_idx[rows] >= 0) & valid[:, None]).sum(1)
    pop = table.popularity[rows] * valid if popularity is None else popularity
    f[:, 5] = np.log1p(np.maximum(pop, 0))
    fs = np.where(valid, table.first_seen[rows], np.nan)
    if now is None:
        missing = np.ones(c, dtype=bool)
        age = np.zeros(c)
    else:
        missing = np.isnan(fs)
        age = np.where(missing, 0.0, np.maximum(now - np.nan_to_num(fs), 0.0) / 3600.0)
    f[:, 6] = np.log1p(age)
    f[:, 7] = missing
    f[:, 8] = ~(table.known[rows] & valid) if cold is None else cold
    f[:, 9] = n_ent > 0
    f[:, 10] = np.log1p(len(hist_rows))
    _collaborative(table, hist_rows, cand_rows, now, f)
    return f


_COL = {name: i for i, name in enumerate(FEATURES)}


def _collaborative(
    table: NewsTable, hist_rows: np.ndarray, cand_rows: np.ndarray, now: float | None, f: np.ndarray
) -> None:
    """Fill the co-click, ALS, text-kNN, recency and within-impression rank columns of `f`."""
    if table.coclick is not None:
        f[:, _COL["knn_mean"]] = table.coclick.knn_mean(hist_rows, cand_rows)
        f[:, _COL["mf"]] = table.coclick.mf_scores(hist_rows, cand_rows)
        f[:, _COL["mf_max"]] = table.coclick.mf_max(hist_rows, cand_rows)
    if table.als is not None:
        f[:, _COL["als"]] = table.als.scores(hist_rows, cand_rows)
    if table.text is not None and len(hist_rows):
        f[:, _COL["text_mean"]], f[:, _COL["text_max"]] = text_knn(table.text, hist_rows, cand_rows)
    if table.recency is not None:
        f[:, _COL["log_recency_pop"]] = np.log1p(table.recency.at(cand_rows, now))
    for name, src in RANKED.items():
        f[:, _COL[name]] = percentile(f[:, _COL[src]])


def text_knn(text: np.ndarray, hist_rows: np.ndarray, cand_rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(mean, max) cosine of the candidates' raw text vectors with the history's (unit rows;
    unknown candidates, rows < 0 or beyond the table, score 0)."""
    ok = (cand_rows >= 0) & (cand_rows < len(text))
    h = hist_rows[hist_rows < len(text)]
    if len(h) == 0:
        z = np.zeros(len(cand_rows), np.float32)
        return z, z.copy()
    sims = matmul(text[np.where(ok, cand_rows, 0)], text[h].T).astype(np.float32)
    sims *= ok[:, None]
    return sims.mean(1), sims.max(1)


def percentile(x: np.ndarray) -> np.ndarray:
    """Share of the other entries below each entry, ties counting half (0.5 for a single one)."""
    n = len(x)
    if n <= 1:
        return np.full(n, 0.5, np.float32)
    s = np.sort(x)
    below = np.searchsorted(s, x, "left")
    tied = np.searchsorted(s, x, "right") - below - 1
    return ((below + 0.5 * tied) / (n - 1)).astype(np.float32)


class RankerMLP(nn.Module):
    """Standardised features -> 2 hidden ReLU layers -> logit."""

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, n_features: int, hidden: int = 64) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(n_features))
        self.register_buffer("std", torch.ones(n_features))
        self.net = nn.Sequential(
            nn.Linear(n_features, hidden),
            nn.ReLU(),
            nn.Linear(hidden, hidden),
            nn.ReLU(),
            nn.Linear(hidden, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net((x - self.mean) / self.std).squeeze(-1)


def numpy_mlp(weights: dict[str, np.ndarray], x: np.ndarray) -> np.ndarray:
    """Forward pass of a saved RankerMLP (matrix products through `_mm`)."""
    h = (x - weights["mean"]) / weights["std"]
    h = np.maximum(matmul(h.astype(np.float32), weights["net.0.weight"].T) + weights["net.0.bias"], 0)
    h = np.maximum(matmul(h, weights["net.2.weight"].T) + weights["net.2.bias"], 0)
    return (matmul(h, weights["net.4.weight"].T) + weights["net.4.bias"])[:, 0]
