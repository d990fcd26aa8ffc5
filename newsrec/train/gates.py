"""Fit the residual fusion's per-modality gate scales on held-out train impressions.

The training loss cannot tell a modality that generalises from one the model merely
memorises (a noisy KG still fits the train clicks through its entity vectors). The
latest train impressions (the ranker holdout) are not trained on and hold articles
the towers never saw by ID, like dev; the scale of each content modality's gates is
chosen there from `SCALES` (coordinate search, one modality at a time), so a
modality that hurts on unseen impressions is turned down or shut (scale 0: the
model is its ID path plus the other modalities).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from newsrec.eval.metrics import auc
from newsrec.models.two_tower import FeatureTensors, TwoTower, all_news_vectors, user_vectors
from newsrec.train.data import ImpressionArrays

SCALES = (1.0, 0.5, 0.25, 0.0)
MIN_IMPRESSIONS = 50  # fewer held-out impressions than this: keep the learned gates


def per_impression_auc(model: TwoTower, ft: FeatureTensors, imps: ImpressionArrays) -> np.ndarray:
    """AUC of each impression with both classes under the dot-product score."""
    vecs, _ = all_news_vectors(model, ft)
    users = user_vectors(model, vecs, imps.hist)
    out = []
    for i in range(len(imps)):
        rows, labels = imps.candidates(i)
        if labels.min() != labels.max():
            out.append(auc(labels, vecs[rows] @ users[i]))
    return np.array(out, dtype=np.float64)


def calibrate_gates(model: TwoTower, ft: FeatureTensors, holdout: ImpressionArrays) -> dict[str, Any]:
    """Set `model.news.modality_scale` to the held-out-best scales; returns what was tried
    (`{"scales": {modality: scale}, "auc": ..., "auc_unscaled": ..., "impressions": n}`),
    or `{"skipped": reason}` when the model has no gates or the holdout is too small."""
    tower = model.news
    if model.cfg.fusion != "residual" or len(tower.mods) < 2:
        return {"skipped": "no residual gates"}
    if len(holdout) < MIN_IMPRESSIONS:
        return {"skipped": f"{len(holdout)} held-out impressions (< {MIN_IMPRESSIONS})"}
    scale = tower.modality_scale
    scale.fill_(1.0)
    base = per_impression_auc(model, ft, holdout)
    best_auc, tried = float(base.mean()), {}
    for m, name in enumerate(tower.mods[1:]):
        best_s = 1.0
        for s in SCALES[1:]:
            with torch.no_grad():
                scale[m] = s
            a = float(per_impression_auc(model, ft, holdout).mean())
            tried[f"{name}={s}"] = round(a, 5)
            if a > best_auc:
                best_auc, best_s = a, s
        with torch.no_grad():
            scale[m] = best_s
    return {
        "scales": {name: float(scale[m]) for m, name in enumerate(tower.mods[1:])},
        "auc": round(best_auc, 5),
        "auc_unscaled": round(float(base.mean()), 5),
        "impressions": int(len(base)),
        "tried": tried,
    }
