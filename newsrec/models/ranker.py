"""Fusion ranker: cross features of (user, history, candidate, time) and an MLP.

The features are computed with numpy from the serving artifact's arrays, so
training (`newsrec.train.ranker`) and serving compute exactly the same thing.
News and user vectors are unit length, so `dot` is also the cosine.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from newsrec.linalg import matmul

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
)


@dataclass
class NewsTable:
    """Per-article arrays in serving row order."""

    vectors: np.ndarray  # (N, D) float32
    category: np.ndarray  # (N,) int64
    ent_idx: np.ndarray  # (N, M) int64, -1 padding
    popularity: np.ndarray  # (N,) float32
    first_seen: np.ndarray  # (N,) float64 epoch seconds, nan unknown
    known: np.ndarray  # (N,) bool


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
    return f


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
