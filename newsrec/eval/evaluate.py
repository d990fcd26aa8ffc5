"""Evaluate a trained run on the labeled dev impressions, through its serving artifact.

Scorers: `two_tower` (dot product), `ranker` (when trained) and the `popularity`
baseline (train click counts). Slices: cold-start candidates (never seen in
train; AUC over each impression's cold candidates only), users with an empty
history, and each category (candidates of that category only). Retrieval:
Recall@K / Hit@K of the clicked articles when all news are ranked by the user
vector. Fusion weights per modality: mean over dev candidates, per slice.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from newsrec.data import load_dataset
from newsrec.data.types import Impression, MindSplit
from newsrec.eval.metrics import MetricAccumulator, recall_hit_at_k
from newsrec.models.artifact import ArtifactModel, load_serving
from newsrec.progress import progress_bar
from newsrec.train.prepare import labeled
from newsrec.train.ranker import Encoded, encode_impressions

RETRIEVAL_KS = (10, 50, 100)


class EvalConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    run: Path
    data: Path
    out: Path
    split: str = "dev"
    max_impressions: int | None = Field(default=None, ge=1)
    retrieval_users: int = Field(default=2000, ge=1)
    seed: int = 0
    top_categories: int = Field(default=8, ge=1)
    progress: bool = True


Scorer = Callable[[Encoded], np.ndarray]


def scorers(model: ArtifactModel) -> dict[str, Scorer]:
    """Candidate scores per impression: `two_tower` (dot), `ranker` (when trained), `popularity`."""
    t = model.table

    def dot(e: Encoded) -> np.ndarray:
        valid = e.cands >= 0
        return (t.vectors[np.where(valid, e.cands, 0)] @ e.user) * valid

    def popularity(e: Encoded) -> np.ndarray:
        valid = e.cands >= 0
        return t.popularity[np.where(valid, e.cands, 0)] * valid

    out: dict[str, Scorer] = {"two_tower": dot}
    if model.ranker is not None:
        out["ranker"] = lambda e: model.score_rows(e.user, e.hist, e.cands, e.time)
    out["popularity"] = popularity
    return out


def _retrieval(model: ArtifactModel, enc: list[Encoded], n_users: int, seed: int) -> dict[str, float]:
    rng = np.random.default_rng(seed)
    pick = rng.choice(len(enc), min(n_users, len(enc)), replace=False) if enc else np.zeros(0, np.int64)
    kmax = min(max(RETRIEVAL_KS), len(model.table.vectors))
    ranked: list[np.ndarray] = []
    positives: list[np.ndarray] = []
    for s in range(0, len(pick), 256):
        chunk = [enc[i] for i in pick[s : s + 256]]
        scores = np.stack([e.user for e in chunk]) @ model.table.vectors.T
        top = np.argpartition(-scores, kmax - 1, axis=1)[:, :kmax]
        order = np.take_along_axis(scores, top, 1).argsort(1)[:, ::-1]
        ranked.append(np.take_along_axis(top, order, 1))
        positives.extend(e.cands[(e.labels > 0) & (e.cands >= 0)] for e in chunk)
    allr = np.concatenate(ranked) if ranked else np.zeros((0, kmax), np.int64)
    return recall_hit_at_k(allr, positives, RETRIEVAL_KS)


def sample_impressions(imps: list[Impression], limit: int | None, seed: int) -> list[Impression]:
    """At most `limit` impressions, drawn at random (seed + 1), in their original order: the
    evaluation sample, so that other tools can score exactly the same impressions."""
    if limit is None or len(imps) <= limit:
        return imps
    keep = np.sort(np.random.default_rng(seed + 1).choice(len(imps), limit, replace=False))
    return [imps[i] for i in keep]


def evaluate_model(model: ArtifactModel, split: MindSplit, cfg: EvalConfig) -> dict[str, Any]:
    """Metrics dict (see module docstring) of `model` on the labeled impressions of `split`."""
    imps = sample_impressions(labeled(split.impressions), cfg.max_impressions, cfg.seed)
    enc = list(
        progress_bar(encode_impressions(model, imps), total=len(imps), desc="encode", enabled=cfg.progress)
    )
    t = model.table
    cat_names = model.categories
    score_fns = scorers(model)
    overall = {k: MetricAccumulator() for k in score_fns}
    cold = {k: MetricAccumulator() for k in score_fns}
    empty = {k: MetricAccumulator() for k in score_fns}
    by_cat: dict[str, dict[str, MetricAccumulator]] = defaultdict(
        lambda: {k: MetricAccumulator() for k in score_fns}
    )
    cat_count: dict[str, int] = defaultdict(int)
    for e in progress_bar(enc, desc="score", enabled=cfg.progress):
        valid = e.cands >= 0
        rows = np.where(valid, e.cands, 0)
        is_cold = ~(t.known[rows] & valid)
        cats = np.where(valid, t.category[rows], -1)
        for name, fn in score_fns.items():
            s = fn(e)
            overall[name].add(e.labels, s)
            if is_cold.any():
                cold[name].add(e.labels[is_cold], s[is_cold])
            if len(e.hist) == 0:
                empty[name].add(e.labels, s)
            for c in np.unique(cats[cats >= 0]):
                m = cats == c
                by_cat[cat_names[c]][name].add(e.labels[m], s[m])
        for c in cats[(cats >= 0) & (e.labels > 0)]:
            cat_count[cat_names[c]] += 1
    top_cats = sorted(cat_count, key=lambda c: -cat_count[c])[: cfg.top_categories]
    result: dict[str, Any] = {
        "model_version": model.model_version,
        "split": split.name,
        "impressions": len(enc),
        "scorers": {
            name: {
                **overall[name].result(),
                "cold": cold[name].result(),
                "empty_history": empty[name].result(),
                "categories": {c: by_cat[c][name].result() for c in top_cats},
            }
            for name in score_fns
        },
        "retrieval": _retrieval(model, enc, cfg.retrieval_users, cfg.seed),
        "modality_weights": _modality_weights(model, enc),
    }
    return result


def _modality_weights(model: ArtifactModel, enc: list[Encoded]) -> dict[str, Any] | None:
    w = model.modality_weights()
    if w is None:
        return None
    t = model.table
    rows = np.unique(np.concatenate([e.cands[e.cands >= 0] for e in enc])) if enc else np.zeros(0, np.int64)
    empty_rows = [e.cands[e.cands >= 0] for e in enc if len(e.hist) == 0]
    slices = {
        "all": rows,
        "cold": rows[~t.known[rows]],
        "warm": rows[t.known[rows]],
        "empty_history": np.unique(np.concatenate(empty_rows)) if empty_rows else np.zeros(0, np.int64),
    }
    return {
        "modalities": model.model_config.modalities(),
        "fusion": model.model_config.fusion,
        **{k: (w[r].mean(0).tolist() if len(r) else None) for k, r in slices.items()},
    }


def evaluate_run(config: EvalConfig, splits: dict[str, MindSplit] | None = None) -> dict[str, Any]:
    """Evaluate `config.run` on `config.split` of `config.data`; write `metrics.json` and
    `report.md` (+ PNG plots) to `config.out`; return the metrics."""
    from newsrec.eval.report import write_report

    model = load_serving(Path(config.run) / "serving", threads=None)
    splits = splits if splits is not None else load_dataset(config.data)
    if config.split not in splits:
        raise ValueError(f"{config.data}: no {config.split!r} split (have {', '.join(splits)})")
    metrics = evaluate_model(model, splits[config.split], config)
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    write_report(metrics, out)
    return metrics
