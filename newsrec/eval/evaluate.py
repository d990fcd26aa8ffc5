"""Evaluate a trained run on the labeled dev impressions, through its serving artifact.

Scorers: the model rows `two_tower` (dot product) and `ranker` (when trained), and the
baselines of `newsrec.eval.baselines` (popularity, recency-weighted popularity,
item-kNN, co-click factorisation, text-kNN), all on the same impressions. `comparison`
names the best baseline (by AUC) and gives every model row's paired per-impression
differences against it (mean, SE, z) with a one-line verdict.

Slices (AUC over each impression's candidates of the slice only, with the number of
impressions that had a click and a non-click there; an empty slice is null with count
0): `cold_unclicked` (never clicked in train: the real-log case), `cold_new` (not in
train news.tsv: the MIND case), users with an empty history, and each category.
Retrieval: Recall@K / Hit@K of the clicked articles when all news are ranked by the user
vector. Fusion weights per modality: mean over dev candidates, per slice.
Everything written is strict JSON (no NaN).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from newsrec.data import load_dataset
from newsrec.data.types import Impression, MindSplit
from newsrec.eval.baselines import BaselineData, baseline_scores, build_baselines
from newsrec.eval.metrics import MetricAccumulator, recall_hit_at_k
from newsrec.eval.paired import PAIRED_METRICS, compare_to_best, strict, write_json
from newsrec.models.artifact import ArtifactModel, load_serving
from newsrec.models.cooc import click_events
from newsrec.progress import progress_bar
from newsrec.train.prepare import labeled
from newsrec.train.ranker import Encoded, encode_impressions

RETRIEVAL_KS = (10, 50, 100)
PER_IMPRESSION = "per_impression.npz"  # scorer.metric -> value per sampled impression (NaN: skipped)


def save_values(path: Path, values: dict[str, dict[str, list[float | None]]]) -> None:
    """Per-impression metrics (plain float arrays, no pickle) for paired comparisons."""
    arrays = {
        f"{name}.{k}": np.array([np.nan if v is None else v for v in vs], dtype=np.float64)
        for name, per in values.items()
        for k, vs in per.items()
    }
    np.savez(path, allow_pickle=False, **arrays)  # type: ignore[arg-type]


def load_values(path: Path, scorer: str) -> dict[str, np.ndarray] | None:
    """{metric: per-impression values} of `scorer` in a `save_values` file (None if absent)."""
    if not path.is_file():
        return None
    with np.load(path, allow_pickle=False) as z:
        out = {k.split(".", 1)[1]: z[k] for k in z.files if k.split(".", 1)[0] == scorer}
    return out or None


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


def _retrieval(model: ArtifactModel, enc: list[Encoded], n_users: int, seed: int) -> dict[str, float | None]:
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


SLICES = ("cold_unclicked", "cold_new", "empty_history")
MODELS = ("two_tower", "ranker")
_BASELINE_CACHE: dict[tuple[int, int], tuple[MindSplit, BaselineData]] = {}


def _baseline_data(model: ArtifactModel, train: MindSplit, seed: int) -> BaselineData:
    """Baseline state of `train` in `model`'s rows; cached per train split object and table
    size (the ablation evaluates many runs of one dataset, which share the row order)."""
    n = len(model.news_ids())
    key = (id(train), n)
    hit = _BASELINE_CACHE.get(key)
    if hit is not None and hit[0] is train:
        return BaselineData(**{**hit[1].__dict__, "text": model.table.text})
    data = build_baselines(labeled(train.impressions), model.row, n, model.table.text, seed)
    _BASELINE_CACHE.clear()
    _BASELINE_CACHE[key] = (train, data)
    return data


def all_scores(
    model: ArtifactModel, enc: list[Encoded], train: MindSplit | None, seed: int = 0
) -> dict[str, list[np.ndarray]]:
    """Scores per impression of every scorer: the model rows, then the baselines."""
    out = {name: [fn(e) for e in enc] for name, fn in scorers(model).items() if name != "popularity"}
    if train is None:
        out["popularity"] = [scorers(model)["popularity"](e) for e in enc]
        return out
    out.update(baseline_scores(_baseline_data(model, train, seed), enc))
    return out


def _slice_masks(e: Encoded, train_news: np.ndarray, clicks: np.ndarray) -> dict[str, np.ndarray]:
    valid = e.cands >= 0
    rows = np.where(valid, e.cands, 0)
    return {
        # never clicked in train (the real-log case: listed, shown, never clicked)
        "cold_unclicked": ~valid | (clicks[rows] <= 0),
        # not in train news.tsv (the MIND case)
        "cold_new": ~valid | ~train_news[rows],
    }


def evaluate_model(
    model: ArtifactModel, split: MindSplit, cfg: EvalConfig, train: MindSplit | None = None
) -> dict[str, Any]:
    """Metrics dict (see module docstring) of `model` on the labeled impressions of
    `split`; with `train`, the baselines and the train-based slices."""
    imps = sample_impressions(labeled(split.impressions), cfg.max_impressions, cfg.seed)
    enc = list(
        progress_bar(encode_impressions(model, imps), total=len(imps), desc="encode", enabled=cfg.progress)
    )
    t = model.table
    cat_names = model.categories
    scores = all_scores(model, enc, train, cfg.seed)
    names = list(scores)
    ids = model.news_ids()
    train_news = np.array([i in train.news for i in ids] if train else [False] * len(ids), dtype=bool)
    if train is not None:
        rows, _ = click_events(labeled(train.impressions), model.row)
        clicks = np.bincount(rows, minlength=len(ids))[: len(ids)].astype(np.float32)
    else:
        clicks = t.popularity
    overall = {k: MetricAccumulator(keep=True) for k in names}
    sliced = {s: {k: MetricAccumulator() for k in names} for s in SLICES}
    by_cat: dict[str, dict[str, MetricAccumulator]] = defaultdict(
        lambda: {k: MetricAccumulator() for k in names}
    )
    cat_count: dict[str, int] = defaultdict(int)
    for i, e in enumerate(progress_bar(enc, desc="score", enabled=cfg.progress)):
        valid = e.cands >= 0
        rows = np.where(valid, e.cands, 0)
        masks = _slice_masks(e, train_news, clicks)
        cats = np.where(valid, t.category[rows], -1)
        for name in names:
            s = scores[name][i]
            overall[name].add(e.labels, s)
            for sl, m in masks.items():
                if m.any():
                    sliced[sl][name].add(e.labels[m], s[m])
            if len(e.hist) == 0:
                sliced["empty_history"][name].add(e.labels, s)
            for c in np.unique(cats[cats >= 0]):
                m = cats == c
                by_cat[cat_names[c]][name].add(e.labels[m], s[m])
        for c in cats[(cats >= 0) & (e.labels > 0)]:
            cat_count[cat_names[c]] += 1
    top_cats = sorted(cat_count, key=lambda c: -cat_count[c])[: cfg.top_categories]
    means = {k: overall[k].result()["auc"] for k in names}
    models = [n for n in names if n in MODELS]
    comparison = compare_to_best(
        {k: overall[k].values for k in names}, means, models, [n for n in names if n not in MODELS]
    )
    return {
        "_values": {k: overall[k].values for k in names},
        "model_version": model.model_version,
        "split": split.name,
        "impressions": len(enc),
        "scorers": {
            name: {
                "kind": "model" if name in MODELS else "baseline",
                **overall[name].result(),
                **_standard_errors(overall[name]),
                **{sl: sliced[sl][name].result() for sl in SLICES},
                "categories": {c: by_cat[c][name].result() for c in top_cats},
            }
            for name in names
        },
        "slice_impressions": {sl: max(a.n for a in sliced[sl].values()) for sl in SLICES},
        "comparison": comparison,
        "retrieval": _retrieval(model, enc, cfg.retrieval_users, cfg.seed),
        "modality_weights": _modality_weights(model, enc),
    }


def _standard_errors(acc: MetricAccumulator) -> dict[str, float | None]:
    """SE of each mean over impressions (for error bars; paired gaps are in `comparison`)."""
    out: dict[str, float | None] = {}
    for k in PAIRED_METRICS:
        v = np.asarray(acc.values.get(k, []), dtype=np.float64)
        v = v[~np.isnan(v)]
        out[f"{k}_se"] = float(v.std(ddof=1) / np.sqrt(len(v))) if len(v) > 1 else None
    return out


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
    train = splits.get("train") if config.split != "train" else None
    metrics = strict(evaluate_model(model, splits[config.split], config, train))
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    save_values(out / PER_IMPRESSION, metrics.pop("_values"))
    write_json(out / "metrics.json", metrics)
    write_report(metrics, out)
    return metrics
