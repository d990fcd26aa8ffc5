"""Train the fusion ranker on the held-out latest train impressions.

The towers never trained on those impressions, so the `dot` feature has the same
distribution there as on new traffic; popularity and cold flags are those known
from the impressions before the holdout, as they would be for new traffic.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from newsrec.atomic import StagedDir, pause_point, write_text_atomic
from newsrec.data import load_dataset
from newsrec.data.types import Impression, MindSplit
from newsrec.eval.metrics import auc
from newsrec.models.artifact import ArtifactModel, load_serving
from newsrec.models.export import seal_serving
from newsrec.models.ranker import FEATURES, RankerMLP, ranker_features
from newsrec.progress import progress_bar
from newsrec.train.config import RankerConfig, RankerResult, TrainConfig
from newsrec.train.prepare import split_impressions


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


def feature_matrix(
    model: ArtifactModel, enc: list[Encoded], past: Sequence[Impression] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Features and labels. With `past`, popularity and cold flags are those known from
    the `past` impressions (the ranker's holdout must look like new traffic: in dev,
    new articles have no clicks and no ID; in train-time counts they would)."""
    xs, ys = [], []
    clicks, seen = as_of(model, past) if past is not None else (None, None)
    for e in enc:
        pop = cold = None
        if clicks is not None and seen is not None:
            valid = e.cands >= 0
            rows = np.where(valid, e.cands, 0)
            pop, cold = clicks[rows] * valid, ~(seen[rows] & valid)
        xs.append(ranker_features(model.table, e.user, e.hist, e.cands, e.time, pop, cold))
        ys.append(e.labels)
    return np.concatenate(xs), np.concatenate(ys).astype(np.float32)


def mean_auc(enc: list[Encoded], scores: list[np.ndarray]) -> float:
    vals = [
        auc(e.labels, s) for e, s in zip(enc, scores, strict=True) if 0 < (e.labels > 0).sum() < len(e.labels)
    ]
    return float(np.mean(vals)) if vals else float("nan")


def train_ranker(
    config: RankerConfig, splits: dict[str, MindSplit] | None = None, workdir: Path | None = None
) -> RankerResult:
    """Fit the ranker MLP for `config.run`, write `serving/ranker.safetensors` and record
    it in `serving/config.json`. Returns dev AUC of the ranker and of the dot product.

    `serving/` is updated through a copy swapped into place when complete; with `workdir`
    (the staging dir of a run not yet committed, see `newsrec.train.run`) in place there."""
    torch.manual_seed(config.seed)
    run = Path(workdir or config.run)
    tcfg = TrainConfig.model_validate_json((run / "config.json").read_text())
    serving_dir = run / "serving"
    model = load_serving(serving_dir, threads=None)
    model.ranker = None
    splits = splits if splits is not None else load_dataset(config.data)
    parts = split_impressions(
        splits, tcfg.max_train_impressions, tcfg.ranker_holdout, config.max_dev_impressions, tcfg.seed
    )
    train_imps = parts.holdout or parts.train  # no holdout configured: in-sample (said in the result)
    enc_train = list(encode_impressions(model, train_imps))
    enc_dev = list(encode_impressions(model, parts.dev))
    x, y = feature_matrix(model, enc_train, parts.train if parts.holdout else None)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    mlp = RankerMLP(len(FEATURES), config.hidden)
    mlp.mean.copy_(xt.mean(0))
    mlp.std.copy_(xt.std(0).clamp(min=1e-3))
    opt = torch.optim.AdamW(mlp.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    gen = torch.Generator().manual_seed(config.seed)
    for _ in progress_bar(range(config.epochs), desc="ranker", leave=False):
        perm = torch.randperm(len(xt), generator=gen)
        for s in range(0, len(perm), config.batch_size):
            idx = perm[s : s + config.batch_size]
            loss = F.binary_cross_entropy_with_logits(mlp(xt[idx]), yt[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    mlp.eval()
    state = {k: v.detach().contiguous() for k, v in mlp.state_dict().items()}
    meta = {"features": list(FEATURES), "hidden": config.hidden, "train_impressions": len(train_imps)}
    save_ranker(serving_dir, state, meta, in_place=workdir is not None)
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
    serving_dir: Path, state: dict[str, torch.Tensor], meta: dict[str, Any], in_place: bool
) -> None:
    """Add the ranker to a serving dir and reseal it. Outside a run's own staging dir the
    dir is copied, updated and swapped in, so a kill never leaves new towers with an old
    ranker (or the reverse) and the old artifact stays loadable until then."""
    if in_place:
        _write_ranker(serving_dir, state, meta)
        return
    with StagedDir(serving_dir) as stage:
        shutil.copytree(serving_dir, stage.path, dirs_exist_ok=True)
        _write_ranker(stage.path, state, meta)
        stage.commit()


def _write_ranker(directory: Path, state: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    save_file(state, str(directory / "ranker.safetensors"))
    pause_point("ranker-save")  # the kill tests stop here: ranker written, config not yet
    cfg = json.loads((directory / "config.json").read_text())
    cfg["ranker"] = meta
    (directory / "config.json").write_text(json.dumps(cfg, indent=2))
    seal_serving(directory)
