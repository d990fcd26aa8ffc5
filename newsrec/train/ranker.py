"""Train the fusion ranker on the held-out latest train impressions.

The towers never trained on those impressions, so the `dot` feature has the same
distribution there as on new traffic; popularity, cold flags, the co-click model, the
ALS article factors and the recency state are those known from the impressions before
the holdout, as they would be for new traffic (no label of a holdout impression reaches
its own features). Serving gets the same state built from every labeled train
impression. A random slice of the holdout impressions early-stops the training (best
epoch by mean AUC).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import save_file

from newsrec.atomic import StagedDir, pause_point, write_text_atomic
from newsrec.data import load_dataset
from newsrec.data.types import Impression, MindSplit
from newsrec.eval.metrics import auc
from newsrec.models.als import ALSModel, ALSParams, build_als
from newsrec.models.artifact import ALS, COCLICK, RECENCY, ArtifactModel, load_serving
from newsrec.models.cooc import CoClick, RecencyState, build_coclick, click_events
from newsrec.models.export import seal_serving
from newsrec.models.ranker import FEATURES, NewsTable, RankerMLP, ranker_features
from newsrec.progress import progress_bar
from newsrec.train.config import RankerConfig, RankerResult, TrainConfig
from newsrec.train.prepare import split_impressions

MF_FACTORS = 64  # rank of the co-click factorisation feature
VALID_SHARE = 0.15  # holdout impressions kept aside for early stopping


@dataclass
class Encoded:
    """One impression in serving rows."""

    user: np.ndarray
    hist: np.ndarray
    cands: np.ndarray
    labels: np.ndarray
    time: float


def encode_impressions(model: ArtifactModel, imps: Sequence[Impression]) -> Iterator[Encoded]:
    m = model.model_config.max_history
    for imp in imps:
        hist = np.array([r for h in imp.history if (r := model.row(h)) is not None], dtype=np.int64)[-m:]
        cands = np.array([-1 if (r := model.row(c)) is None else r for c in imp.candidates], dtype=np.int64)
        labels = np.array(imp.labels, dtype=np.int8) if imp.labels else np.full(len(cands), -1, np.int8)
        yield Encoded(model.encode_user_rows(hist), hist, cands, labels, imp.time.timestamp())


def as_of(model: ArtifactModel, past: Sequence[Impression]) -> tuple[np.ndarray, np.ndarray]:
    """Click counts and seen flags per serving row from `past` impressions only."""
    n = len(model.news_ids())
    clicks = np.zeros(n, dtype=np.float32)
    seen = np.zeros(n, dtype=bool)
    for imp in past:
        for nid, y in zip(imp.candidates, imp.labels, strict=False):
            r = model.row(nid)
            if r is not None:
                seen[r] = True
                clicks[r] += y
        for nid in imp.history:
            r = model.row(nid)
            if r is not None:
                seen[r] = True
    return clicks, seen


def table_as_of(model: ArtifactModel, past: Sequence[Impression], seed: int = 0) -> NewsTable:
    """The serving table with everything learned from impressions (click counts, seen
    flags, co-click model, ALS article factors, recency state) rebuilt from `past` only."""
    clicks, seen = as_of(model, past)
    n = len(clicks)
    rows, times = click_events(past, model.row)
    return replace(
        model.table,
        popularity=clicks,
        known=seen,
        coclick=build_coclick(past, model.row, n, MF_FACTORS, seed),
        recency=RecencyState.build(rows, times, n),
        als=build_als(past, model.row, n, ALSParams(seed=seed)),
    )


def feature_matrix(
    model: ArtifactModel, enc: list[Encoded], past: Sequence[Impression] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Features and labels. With `past`, everything learned from impressions is as known
    from the `past` impressions (the ranker's holdout must look like new traffic: in dev,
    new articles have no clicks and no ID; in train-time counts they would)."""
    table = table_as_of(model, past) if past is not None else model.table
    xs = [ranker_features(table, e.user, e.hist, e.cands, e.time) for e in enc]
    ys = [e.labels for e in enc]
    return np.concatenate(xs), np.concatenate(ys).astype(np.float32)


Collab = tuple[CoClick, RecencyState, ALSModel]


def serving_state(model: ArtifactModel, train: Sequence[Impression], seed: int) -> Collab:
    """Co-click model, recency state and ALS model of every labeled train impression: what
    serving computes the ranker's collaborative features from."""
    n = len(model.news_ids())
    cooc = build_coclick(train, model.row, n, MF_FACTORS, seed)
    rows, times = click_events(train, model.row)
    return cooc, RecencyState.build(rows, times, n), build_als(train, model.row, n, ALSParams(seed=seed))


def _save_serving_state(directory: Path, cooc: CoClick, rec: RecencyState, als: ALSModel) -> None:
    cooc.save(directory / COCLICK)
    als.save(directory / ALS)
    save_file(
        {
            "value": torch.from_numpy(rec.value),
            "ref": torch.tensor([rec.ref], dtype=torch.float64),
            "tau": torch.tensor([rec.tau], dtype=torch.float64),
        },
        str(directory / RECENCY),
    )


def mean_auc(enc: list[Encoded], scores: list[np.ndarray]) -> float:
    vals = [
        auc(e.labels, s) for e, s in zip(enc, scores, strict=True) if 0 < (e.labels > 0).sum() < len(e.labels)
    ]
    return float(np.mean(vals)) if vals else float("nan")


def listwise_loss(logits: torch.Tensor, labels: torch.Tensor, imp: torch.Tensor, n_imp: int) -> torch.Tensor:
    """Softmax cross-entropy of each impression's candidates against its clicks (ListNet
    with the clicks as the target distribution), averaged over impressions with a click.
    Only differences within an impression matter, so features whose level shifts between
    the holdout and new traffic (ages, counts) cannot move the loss as in pointwise BCE."""
    peak = torch.full((n_imp,), -torch.inf).scatter_reduce(0, imp, logits.detach(), "amax")
    z = torch.zeros(n_imp).index_add(0, imp, torch.exp(logits - peak[imp]))
    log_p = logits - peak[imp] - torch.log(z[imp])
    clicks = torch.zeros(n_imp).index_add(0, imp, labels)
    has = clicks > 0
    per_imp = torch.zeros(n_imp).index_add(0, imp, -labels * log_p)
    return (per_imp[has] / clicks[has]).mean() if bool(has.any()) else logits.sum() * 0.0


def _val_auc(mlp: RankerMLP, x: torch.Tensor, y: np.ndarray, offsets: np.ndarray, imps: np.ndarray) -> float:
    with torch.no_grad():
        scores = mlp(x).numpy()
    vals = [
        auc(y[offsets[i] : offsets[i + 1]], scores[offsets[i] : offsets[i + 1]])
        for i in imps
        if 0 < y[offsets[i] : offsets[i + 1]].sum() < offsets[i + 1] - offsets[i]
    ]
    return float(np.mean(vals)) if vals else float("nan")


def _fit(
    x: np.ndarray, y: np.ndarray, offsets: np.ndarray, config: RankerConfig
) -> tuple[RankerMLP, int, float]:
    """Fit (listwise loss, batches of whole impressions) on the impressions outside a
    random validation slice; keep the epoch with the best mean validation AUC.
    Returns (mlp, best epoch (1-based), its validation AUC; NaN without a slice)."""
    n_imp = len(offsets) - 1
    rng = np.random.default_rng(config.seed)
    valid_imp = rng.random(n_imp) < (VALID_SHARE if n_imp >= 20 else 0.0)
    fit_imp = np.flatnonzero(~valid_imp)
    row_imp = np.repeat(np.arange(n_imp), np.diff(offsets))
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    fit_rows = torch.from_numpy(~valid_imp[row_imp])
    mlp = RankerMLP(x.shape[1], config.hidden)
    mlp.mean.copy_(xt[fit_rows].mean(0))
    mlp.std.copy_(xt[fit_rows].std(0).nan_to_num(1.0).clamp(min=1e-3))
    opt = torch.optim.AdamW(mlp.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    per_batch = max(config.batch_size // max(int(np.diff(offsets).mean()), 1), 1) if n_imp else 1
    best: tuple[float, int, dict[str, torch.Tensor]] = (-np.inf, 0, {})
    for epoch in progress_bar(range(1, config.epochs + 1), desc="ranker", leave=False):
        mlp.train()
        order = rng.permutation(fit_imp)
        for s in range(0, len(order), per_batch):
            batch = order[s : s + per_batch]
            rows = np.concatenate([np.arange(offsets[i], offsets[i + 1]) for i in batch])
            imp = torch.from_numpy(np.repeat(np.arange(len(batch)), np.diff(offsets)[batch]))
            loss = listwise_loss(mlp(xt[rows]), yt[rows], imp, len(batch))
            opt.zero_grad()
            loss.backward()
            opt.step()
        mlp.eval()
        v = _val_auc(mlp, xt, y, offsets, np.flatnonzero(valid_imp)) if valid_imp.any() else float("nan")
        if v > best[0] or (v != v and epoch == config.epochs):
            best = (v, epoch, {k: t.clone() for k, t in mlp.state_dict().items()})
    if best[2]:
        mlp.load_state_dict(best[2])
    return mlp.eval(), best[1], best[0]


def train_ranker(
    config: RankerConfig, splits: dict[str, MindSplit] | None = None, workdir: Path | None = None
) -> RankerResult:
    """Fit the ranker MLP for `config.run`, write `serving/ranker.safetensors` (+ the
    co-click model and recency state it reads) and record it in `serving/config.json`.
    Returns dev AUC of the ranker and of the dot product.

    `serving/` is updated through a copy swapped into place when complete; with `workdir`
    (the staging dir of a run not yet committed, see `newsrec.train.run`) in place there."""
    torch.manual_seed(config.seed)
    run = Path(workdir or config.run)
    tcfg = TrainConfig.model_validate_json((run / "config.json").read_text())
    serving_dir = run / "serving"
    model = load_serving(serving_dir, threads=None, with_ranker=False)
    splits = splits if splits is not None else load_dataset(config.data)
    parts = split_impressions(
        splits, tcfg.max_train_impressions, tcfg.ranker_holdout, config.max_dev_impressions, tcfg.seed
    )
    train_imps = parts.holdout or parts.train  # no holdout configured: in-sample (said in the result)
    enc_train = list(encode_impressions(model, train_imps))
    enc_dev = list(encode_impressions(model, parts.dev))
    x, y = feature_matrix(model, enc_train, parts.train)
    offsets = np.concatenate([[0], np.cumsum([len(e.cands) for e in enc_train])]).astype(np.int64)
    mlp, best_epoch, valid_auc = _fit(x, y, offsets, config)
    state = {k: v.detach().contiguous() for k, v in mlp.state_dict().items()}
    # Serving state from every labeled train impression (the dev tail excluded when the
    # dataset has no dev split): the same data the evaluation's baselines see.
    everything = split_impressions(splits, None, 0.0, None, tcfg.seed).train
    cooc, rec, als = serving_state(model, everything, config.seed)
    meta = {
        "features": list(FEATURES),
        "hidden": config.hidden,
        "train_impressions": len(train_imps),
        "best_epoch": best_epoch,
        "valid_auc": None if valid_auc != valid_auc else valid_auc,
    }
    save_ranker(serving_dir, state, meta, (cooc, rec, als), in_place=workdir is not None)
    model.table.coclick, model.table.recency, model.table.als = cooc, rec, als
    model.ranker = {k: v.numpy() for k, v in state.items()}
    dot_scores = [model.table.vectors[np.maximum(e.cands, 0)] @ e.user for e in enc_dev]
    rank_scores = [model.score_rows(e.user, e.hist, e.cands, e.time) for e in enc_dev]
    result = RankerResult(
        run_dir=Path(config.run),
        dev_auc=mean_auc(enc_dev, rank_scores),
        dev_auc_dot=mean_auc(enc_dev, dot_scores),
        train_rows=len(x),
        features=list(FEATURES),
    )
    write_text_atomic(run / "ranker_result.json", result.model_dump_json(indent=2))
    return result


def save_ranker(
    serving_dir: Path,
    state: dict[str, torch.Tensor],
    meta: dict[str, Any],
    collab: Collab,
    in_place: bool,
) -> None:
    """Add the ranker to a serving dir and reseal it. Outside a run's own staging dir the
    dir is copied, updated and swapped in, so a kill never leaves new towers with an old
    ranker (or the reverse) and the old artifact stays loadable until then."""
    if in_place:
        _write_ranker(serving_dir, state, meta, collab)
        return
    with StagedDir(serving_dir) as stage:
        shutil.copytree(serving_dir, stage.path, dirs_exist_ok=True)
        _write_ranker(stage.path, state, meta, collab)
        stage.commit()


def _write_ranker(
    directory: Path,
    state: dict[str, torch.Tensor],
    meta: dict[str, Any],
    collab: Collab,
) -> None:
    save_file(state, str(directory / "ranker.safetensors"))
    _save_serving_state(directory, *collab)
    pause_point("ranker-save")  # the kill tests stop here: ranker written, config not yet
    cfg = json.loads((directory / "config.json").read_text())
    cfg["ranker"] = meta
    (directory / "config.json").write_text(json.dumps(cfg, indent=2))
    seal_serving(directory)
