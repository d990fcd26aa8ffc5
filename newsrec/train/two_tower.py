"""Two-tower training: InfoNCE over in-batch + shown negatives, early stop on dev AUC."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import random
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

from newsrec.atomic import StagedDir
from newsrec.data.types import Impression
from newsrec.eval.metrics import auc
from newsrec.models.export import export_serving, seal_serving
from newsrec.models.features import NewsFeatures
from newsrec.models.two_tower import FeatureTensors, TwoTower, all_news_vectors, user_vectors
from newsrec.progress import progress_bar
from newsrec.train.config import TrainConfig, TrainResult
from newsrec.train.data import ImpressionArrays, make_samples, sample_negatives, to_arrays
from newsrec.train.gates import calibrate_gates
from newsrec.train.logging import MetricsLogger
from newsrec.train.prepare import Inputs, load_inputs, split_impressions


def ids_seen_in(feats: NewsFeatures, impressions: list[Impression]) -> NewsFeatures:
    """Copy of `feats` where articles that never occur in `impressions` map to the
    unknown-id row: their own rows would stay at random init (subsampled or ranker
    holdout impressions), and the unknown row is what serving uses for new articles."""
    seen: set[str] = set()
    for imp in impressions:
        seen.update(imp.history)
        seen.update(imp.candidates)
    mask = np.array([nid in seen for nid in feats.ids])
    return dataclasses.replace(feats, id_rows=np.where(mask, feats.id_rows, 0))


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def dev_auc(model: TwoTower, ft: FeatureTensors, dev: ImpressionArrays) -> float:
    """Mean per-impression AUC of the dot-product score (impressions without both
    classes skipped)."""
    vecs, _ = all_news_vectors(model, ft)
    users = user_vectors(model, vecs, dev.hist)
    total, n = 0.0, 0
    for i in range(len(dev)):
        rows, labels = dev.candidates(i)
        if labels.min() == labels.max():
            continue
        total += auc(labels, vecs[rows] @ users[i])
        n += 1
    return total / n if n else float("nan")


def info_nce(
    model: TwoTower,
    ft: FeatureTensors,
    hist: torch.Tensor,
    pos: torch.Tensor,
    neg: torch.Tensor,
    log_q: torch.Tensor | None,
    temperature: float,
) -> torch.Tensor:
    """Loss of one batch. Each article in the batch is encoded once (unique rows)."""
    b, h = hist.shape
    rows = torch.cat([hist.reshape(-1), pos, neg.reshape(-1)])
    uniq, inv = torch.unique(rows, return_inverse=True)
    vecs, _ = model.encode_rows(uniq, ft, model.entity_table())
    allv = vecs[inv]
    hv = allv[: b * h].reshape(b, h, -1)
    pv = allv[b * h : b * h + b]
    nv = allv[b * h + b :].reshape(b, neg.shape[1], -1)
    u = model.encode_users(hv, hist > 0)
    in_batch = (u @ pv.T) / temperature
    if log_q is not None:
        in_batch = in_batch - log_q[pos].unsqueeze(0)
    # Another sample with the same positive article is not a negative.
    same = (pos.unsqueeze(0) == pos.unsqueeze(1)) & ~torch.eye(b, dtype=torch.bool, device=pos.device)
    in_batch = in_batch.masked_fill(same, -1e4)
    shown = torch.einsum("bd,bkd->bk", u, nv) / temperature
    shown = shown.masked_fill(neg == 0, -1e4)
    logits = torch.cat([in_batch, shown], dim=1).float()
    return F.cross_entropy(logits, torch.arange(b, device=pos.device))


# What a run consists of: replaced as a whole by a new run. Anything else in the run
# directory (a user's data, reports) is carried over untouched.
RUN_FILES = (
    "config.json",
    "ranker_holdout.json",
    "checkpoints",
    "serving",
    "metrics.jsonl",
    "metrics.csv",
    "train_result.json",
    "ranker_result.json",
)


def train_two_tower(
    config: TrainConfig, inputs: Inputs | None = None, workdir: Path | None = None
) -> TrainResult:
    """Train the towers, keep `best` (by dev AUC) and `last` checkpoints, export
    `RUN/serving/` from the best one. `inputs` lets several runs share one load.

    The run is written into a hidden sibling of `config.out` and swapped into place when
    complete, so a killed run leaves the previous one intact. With `workdir` (a caller's
    staging dir, see `newsrec.train.run`), it is written there and not committed."""
    if workdir is not None:
        return _train_into(config, inputs, workdir)
    with StagedDir(config.out, owned=RUN_FILES) as stage:
        result = _train_into(config, inputs, stage.path)
        seal_serving(stage.path / "serving")
        stage.commit()
    return result


def _train_into(
    config: TrainConfig, inputs: Inputs | None, run: Path, shut: dict[str, Any] | None = None
) -> TrainResult:
    """The training run itself, written into `run` (named as `config.out`).

    When the held-out gate calibration shuts a content modality off (scale 0), the
    towers are trained again without it (`shut` records why, into the artifact's
    `gate_calibration`): a model fitted with a modality and then deprived of it is
    worse than one fitted without it, and "off" must mean "as good as the model
    without that modality"."""

    if config.num_threads:
        torch.set_num_threads(config.num_threads)
    seed_everything(config.seed)
    device = resolve_device(config.device)
    mcfg = config.model
    if inputs is None:
        if mcfg.use_llm and config.embeddings is None:
            raise ValueError("the llm modality needs --embeddings (or use --no-llm)")
        inputs = load_inputs(config.data, config.embeddings, config.kg, mcfg.max_entities_per_article)
    feats = inputs.features
    mcfg = mcfg.model_copy(update={"text_dim": feats.text.shape[1], "num_id_rows": feats.num_id_rows})
    parts = split_impressions(
        inputs.splits,
        config.max_train_impressions,
        config.ranker_holdout,
        config.max_dev_impressions,
        config.seed,
    )
    feats = ids_seen_in(feats, parts.train)
    train_arr = to_arrays(parts.train, feats, mcfg.max_history)
    dev_arr = to_arrays(parts.dev, feats, mcfg.max_history)
    samples = make_samples(train_arr)
    final = Path(config.out)  # names and paths in the outputs are those of the committed run
    (run / "checkpoints").mkdir(parents=True, exist_ok=True)
    (run / "config.json").write_text(config.model_copy(update={"model": mcfg}).model_dump_json(indent=2))
    (run / "ranker_holdout.json").write_text(json.dumps([imp.impression_id for imp in parts.holdout]))

    model = TwoTower(mcfg, inputs.graph if mcfg.use_gnn else None).to(device)
    ft = FeatureTensors(feats, device)
    opt = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    use_amp = device.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    log_q = None
    if config.logq:
        counts = np.bincount(samples.pos, minlength=len(feats.ids)).astype(np.float64) + 1.0
        log_q = torch.from_numpy(np.log(counts / counts.sum()).astype(np.float32)).to(device)
    rng = np.random.default_rng(config.seed)
    logger = MetricsLogger(run)
    best_auc, best_epoch, stale, history = -1.0, 0, 0, []
    hist_t = torch.from_numpy(train_arr.hist)
    epoch = 0
    for epoch in range(1, config.epochs + 1):
        model.train()
        perm = rng.permutation(len(samples.imp))
        losses = []
        bar = progress_bar(
            range(0, len(perm), config.batch_size),
            desc=f"epoch {epoch}",
            enabled=config.progress,
            leave=False,
        )
        t0 = time.perf_counter()
        for s in bar:
            idx = perm[s : s + config.batch_size]
            if len(idx) < 2:
                continue
            imps = samples.imp[idx]
            neg = sample_negatives(samples, imps, max(config.negatives, 1), rng)
            if config.negatives == 0:
                neg[:] = 0
            amp = torch.autocast("cuda", dtype=torch.float16) if use_amp else contextlib.nullcontext()
            with amp:
                loss = info_nce(
                    model,
                    ft,
                    hist_t[imps].to(device),
                    torch.from_numpy(samples.pos[idx]).to(device),
                    torch.from_numpy(neg).to(device),
                    log_q,
                    config.temperature,
                )
            opt.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.unscale_(opt)
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            scaler.step(opt)
            scaler.update()
            losses.append(float(loss.detach()))
            bar.set_postfix(loss=f"{np.mean(losses[-50:]):.4f}")
        train_secs = time.perf_counter() - t0
        auc_dev = dev_auc(model, ft, dev_arr)
        row = {
            "epoch": epoch,
            "loss": float(np.mean(losses)) if losses else float("nan"),
            "dev_auc": auc_dev,
            "train_seconds": train_secs,
            "samples_per_second": len(perm) / max(train_secs, 1e-9),
            "impressions_per_second": len(train_arr) / max(train_secs, 1e-9),
        }
        history.append(row)
        logger.log(row)
        state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
        save_file(state, str(run / "checkpoints" / "last.safetensors"))
        if auc_dev > best_auc:
            best_auc, best_epoch, stale = auc_dev, epoch, 0
            save_file(state, str(run / "checkpoints" / "best.safetensors"))
        else:
            stale += 1
            if stale >= config.patience:
                break
    logger.close()
    model.load_state_dict(load_file(str(run / "checkpoints" / "best.safetensors")))
    gates: dict[str, Any] = (
        calibrate_gates(model, ft, to_arrays(parts.holdout, feats, mcfg.max_history))
        if config.calibrate_gates
        else {"skipped": "calibrate_gates off"}
    )
    off = [m for m, v in gates.get("scales", {}).items() if v == 0.0]
    if off and config.retrain_without_shut:
        shut = {
            **(shut or {}),
            **{m: {k: gates[k] for k in ("auc", "auc_unscaled", "impressions")} for m in off},
        }
        sub = mcfg.model_copy(update={f"use_{m}": False for m in off})
        return _train_into(config.model_copy(update={"model": sub}), inputs, run, shut)
    if shut:
        gates = {**gates, "shut": shut}
    model = model.cpu()
    version = config.model_version or f"{final.name}-e{best_epoch}"
    serving = export_serving(
        model,
        feats,
        inputs.graph,
        run / "serving",
        version,
        extra={"dev_auc_dot": best_auc, "dev_split": parts.dev_name, "gate_calibration": gates},
    )
    result = TrainResult(
        run_dir=final,
        serving_dir=final / serving.relative_to(run),
        best_epoch=best_epoch,
        best_dev_auc=best_auc,
        epochs_run=epoch,
        history=history,
        impressions_per_second=float(np.median([h["impressions_per_second"] for h in history])),
    )
    (run / "train_result.json").write_text(result.model_dump_json(indent=2))
    return result
