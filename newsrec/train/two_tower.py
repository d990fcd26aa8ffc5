"""Two-tower training: InfoNCE over in-batch + shown negatives, early stop on dev AUC."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import random
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from torch import nn
from torch.nn.parallel import DistributedDataParallel as DDP

from newsrec.atomic import StagedDir
from newsrec.data.types import Impression
from newsrec.eval.metrics import auc
from newsrec.models.export import export_serving, seal_serving
from newsrec.models.features import NewsFeatures
from newsrec.models.towers import ModelConfig
from newsrec.models.two_tower import FeatureTensors, TwoTower, all_news_vectors, user_vectors
from newsrec.progress import progress_bar
from newsrec.train.config import TrainConfig, TrainResult
from newsrec.train.data import ImpressionArrays, Samples, make_samples, sample_negatives, to_arrays
from newsrec.train.distributed import (
    Gather,
    World,
    broadcast_float,
    broadcast_json,
    current_world,
    mean_over_ranks,
    split_sizes,
)
from newsrec.train.gates import calibrate_gates
from newsrec.train.logging import MetricsLogger
from newsrec.train.prepare import ImpressionSplits, Inputs, load_inputs, split_impressions


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
    gather: Gather | None = None,
) -> torch.Tensor:
    """Loss of one batch. Each article in the batch is encoded once (unique rows).

    With `gather` (training on several processes) the batch is this rank's slice of the
    global batch: the in-batch negatives are every rank's positives (their vectors
    gathered with the gradient), and the loss is scaled so that the ranks' mean, which
    DDP's gradient averaging takes, is the mean over the global batch."""
    b, h = hist.shape
    rows = torch.cat([hist.reshape(-1), pos, neg.reshape(-1)])
    uniq, inv = torch.unique(rows, return_inverse=True)
    vecs, _ = model.encode_rows(uniq, ft, model.entity_table())
    allv = vecs[inv]
    hv = allv[: b * h].reshape(b, h, -1)
    pv = allv[b * h : b * h + b]
    nv = allv[b * h + b :].reshape(b, neg.shape[1], -1)
    u = model.encode_users(hv, hist > 0)
    all_pos, all_pv, first = pos, pv, 0
    if gather is not None:
        all_pos, all_pv, first = gather.ids(pos), gather.rows(pv), gather.offset
    in_batch = (u @ all_pv.T) / temperature
    if log_q is not None:
        in_batch = in_batch - log_q[all_pos].unsqueeze(0)
    own = torch.arange(b, device=pos.device) + first  # the column of each sample's positive
    # Another sample with the same positive article is not a negative.
    same = pos.unsqueeze(1) == all_pos.unsqueeze(0)
    same[torch.arange(b, device=pos.device), own] = False
    in_batch = in_batch.masked_fill(same, -1e4)
    shown = torch.einsum("bd,bkd->bk", u, nv) / temperature
    shown = shown.masked_fill(neg == 0, -1e4)
    logits = torch.cat([in_batch, shown], dim=1).float()
    if gather is None:
        return F.cross_entropy(logits, own)
    return F.cross_entropy(logits, own, reduction="sum") * (gather.world.size / gather.total)


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
    staging dir, see `newsrec.train.run`), it is written there and not committed.

    On several processes (torchrun, `newsrec.train.distributed`) only rank 0 writes; the
    other ranks train their shards and return the same result without touching disk."""
    world = current_world()
    if workdir is not None or not world.is_main:
        return _train_into(config, inputs, workdir if world.is_main else None)
    with StagedDir(config.out, owned=RUN_FILES) as stage:
        result = _train_into(config, inputs, stage.path)
        seal_serving(stage.path / "serving")
        stage.commit()
    return result


@dataclass
class _Prepared:
    """Everything a run derives from its inputs before the first step."""

    inputs: Inputs
    feats: NewsFeatures
    mcfg: ModelConfig
    parts: ImpressionSplits
    train: ImpressionArrays
    dev: ImpressionArrays
    samples: Samples


@dataclass
class _Fit:
    """The trained towers (holding the best epoch's weights) and their history."""

    model: TwoTower
    ft: FeatureTensors
    best_auc: float
    best_epoch: int
    epochs_run: int
    history: list[dict[str, float]]


def _train_into(
    config: TrainConfig, inputs: Inputs | None, run: Path | None, shut: dict[str, Any] | None = None
) -> TrainResult:
    """The training run itself, written into `run` (named as `config.out`; None: a
    rank other than 0, which writes nothing).

    When the held-out gate calibration shuts a content modality off (scale 0), the
    towers are trained again without it (`shut` records why, into the artifact's
    `gate_calibration`): a model fitted with a modality and then deprived of it is
    worse than one fitted without it, and "off" must mean "as good as the model
    without that modality"."""
    if config.num_threads:
        torch.set_num_threads(config.num_threads)
    seed_everything(config.seed)
    device = _device(config.device, current_world())
    prep = _prepare(config, inputs)
    if run is not None:
        _write_header(run, config, prep)
    fit = _fit(config, prep, device, run)
    gates = _calibrate(config, fit, prep)
    off = [m for m, v in gates.get("scales", {}).items() if v == 0.0]
    if off and config.retrain_without_shut:
        shut = {
            **(shut or {}),
            **{m: {k: gates[k] for k in ("auc", "auc_unscaled", "impressions")} for m in off},
        }
        sub = prep.mcfg.model_copy(update={f"use_{m}": False for m in off})
        return _train_into(config.model_copy(update={"model": sub}), prep.inputs, run, shut)
    if shut:
        gates = {**gates, "shut": shut}
    return _finish(config, prep, fit, gates, run)


def _device(name: str, world: World) -> torch.device:
    """The training device; on several GPU processes, this rank's own GPU."""
    device = resolve_device(name)
    if world.distributed and device.type == "cuda":
        return torch.device("cuda", world.local_rank)
    return device


def _prepare(config: TrainConfig, inputs: Inputs | None) -> _Prepared:
    """Load (unless given) the inputs, split the impressions, build the arrays."""
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
    return _Prepared(inputs, feats, mcfg, parts, train_arr, dev_arr, make_samples(train_arr))


def _write_header(run: Path, config: TrainConfig, prep: _Prepared) -> None:
    (run / "checkpoints").mkdir(parents=True, exist_ok=True)
    (run / "config.json").write_text(config.model_copy(update={"model": prep.mcfg}).model_dump_json(indent=2))
    (run / "ranker_holdout.json").write_text(json.dumps([imp.impression_id for imp in prep.parts.holdout]))


class _BatchLoss(nn.Module):
    """`info_nce` as a module, so DistributedDataParallel (which synchronises the
    gradients of what its wrapped module's forward computes) can wrap it."""

    def __init__(self, model: TwoTower, ft: FeatureTensors, log_q: torch.Tensor | None, temperature: float):
        super().__init__()
        self.model, self.ft, self.log_q, self.temperature = model, ft, log_q, temperature

    def forward(
        self, hist: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor, gather: Gather | None
    ) -> torch.Tensor:
        return info_nce(self.model, self.ft, hist, pos, neg, self.log_q, self.temperature, gather)


class _Loop:
    """The optimisation state of one run: towers, optimiser, the batch loss (wrapped in
    DDP on several processes) and the sampling stream."""

    def __init__(self, config: TrainConfig, prep: _Prepared, device: torch.device, world: World) -> None:
        self.config, self.prep, self.device, self.world = config, prep, device, world
        graph = prep.inputs.graph if prep.mcfg.use_gnn else None
        self.model = TwoTower(prep.mcfg, graph).to(device)
        self.ft = FeatureTensors(prep.feats, device)
        self.opt = torch.optim.AdamW(self.model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
        self.use_amp = device.type == "cuda"
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.use_amp)
        log_q = None
        if config.logq:
            # Click shares over the whole train set: every rank holds all samples, so the
            # correction is the same global one on each rank.
            counts = np.bincount(prep.samples.pos, minlength=len(prep.feats.ids)).astype(np.float64) + 1.0
            log_q = torch.from_numpy(np.log(counts / counts.sum()).astype(np.float32)).to(device)
        loss = _BatchLoss(self.model, self.ft, log_q, config.temperature)
        self.loss: nn.Module = loss
        if world.distributed:
            ids = [device.index] if device.type == "cuda" else None
            # The graph's sparse adjacency is built identically on every rank from the
            # same data; DDP cannot broadcast sparse tensors, and need not.
            sparse = [n for n, b in loss.named_buffers() if b.is_sparse]
            DDP._set_params_and_buffers_to_ignore_for_model(loss, sparse)
            self.loss = DDP(loss, device_ids=ids)
            # A (1, D) gate parameter gets its gradient with a (1, 1) stride from an
            # einsum: the same memory layout for a size-1 dim, which DDP warns about.
            warnings.filterwarnings("ignore", message="Grad strides do not match bucket view strides")
            # Dropout masks of their own per rank (the weights are already equal everywhere).
            torch.manual_seed(config.seed + 1_000_003 * world.rank)
        self.rng = np.random.default_rng(config.seed)
        self.hist_t = torch.from_numpy(prep.train.hist)
        # Global batch: per-rank batch x world size; the ranks share the seeded epoch
        # permutation and each takes its own slice of every global batch.
        self.global_batch = config.batch_size * world.size

    def epoch(self, epoch: int) -> tuple[list[float], int]:
        """One pass over the train samples; (per-step losses of this rank, samples)."""
        self.model.train()
        perm = self.rng.permutation(len(self.prep.samples.imp))
        losses: list[float] = []
        bar = progress_bar(
            range(0, len(perm), self.global_batch),
            desc=f"epoch {epoch}",
            enabled=self.config.progress and self.world.is_main,
            leave=False,
        )
        for s in bar:
            idx = perm[s : s + self.global_batch]
            if len(idx) < max(2, self.world.size):  # every rank needs a sample
                continue
            losses.append(self.step(idx))
            bar.set_postfix(loss=f"{np.mean(losses[-50:]):.4f}")
        return losses, len(perm)

    def step(self, idx: np.ndarray) -> float:
        """One optimiser step on the global batch `idx`; this rank computes its slice."""
        cfg, samples = self.config, self.prep.samples
        imps = samples.imp[idx]
        # Drawn for the whole global batch on every rank: the ranks' streams stay equal.
        neg = sample_negatives(samples, imps, max(cfg.negatives, 1), self.rng)
        if cfg.negatives == 0:
            neg[:] = 0
        gather, mine = None, slice(0, len(idx))
        if self.world.distributed:
            gather = Gather(self.world, split_sizes(len(idx), self.world.size))
            mine = slice(gather.offset, gather.offset + gather.sizes[self.world.rank])
        amp = torch.autocast("cuda", dtype=torch.float16) if self.use_amp else contextlib.nullcontext()
        with amp:
            loss = self.loss(
                self.hist_t[imps[mine]].to(self.device),
                torch.from_numpy(samples.pos[idx[mine]]).to(self.device),
                torch.from_numpy(neg[mine]).to(self.device),
                gather,
            )
        self.opt.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.unscale_(self.opt)
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.grad_clip)
        self.scaler.step(self.opt)
        self.scaler.update()
        return float(loss.detach())


def _fit(config: TrainConfig, prep: _Prepared, device: torch.device, run: Path | None) -> _Fit:
    """Epochs until `patience` epochs without dev-AUC gain; the towers end at the best
    epoch's weights. Rank 0 evaluates, logs and checkpoints; the others follow its AUC."""
    world = current_world()
    loop = _Loop(config, prep, device, world)
    logger = MetricsLogger(run) if run is not None else None
    best_auc, best_epoch, stale, history = -1.0, 0, 0, []
    best_state: dict[str, torch.Tensor] = {}
    epoch = 0
    for epoch in range(1, config.epochs + 1):
        t0 = time.perf_counter()
        losses, n_samples = loop.epoch(epoch)
        train_secs = time.perf_counter() - t0
        losses = mean_over_ranks(losses, world)  # the global batches' losses
        auc_dev = dev_auc(loop.model, loop.ft, prep.dev) if world.is_main else 0.0
        auc_dev = broadcast_float(auc_dev, world)
        row = {
            "epoch": epoch,
            "loss": float(np.mean(losses)) if losses else float("nan"),
            "dev_auc": auc_dev,
            "train_seconds": train_secs,
            "samples_per_second": n_samples / max(train_secs, 1e-9),
            "impressions_per_second": len(prep.train) / max(train_secs, 1e-9),
        }
        history.append(row)
        state = {k: v.detach().cpu().contiguous() for k, v in loop.model.state_dict().items()}
        if logger is not None and run is not None:
            logger.log(row)
            save_file(state, str(run / "checkpoints" / "last.safetensors"))
        if auc_dev > best_auc:
            best_auc, best_epoch, stale = auc_dev, epoch, 0
            best_state = {k: v.clone() for k, v in state.items()}
            if run is not None:
                save_file(state, str(run / "checkpoints" / "best.safetensors"))
        else:
            stale += 1
            if stale >= config.patience:
                break
    if logger is not None:
        logger.close()
    loop.model.load_state_dict(best_state)
    return _Fit(loop.model, loop.ft, best_auc, best_epoch, epoch, history)


def _calibrate(config: TrainConfig, fit: _Fit, prep: _Prepared) -> dict[str, Any]:
    """The gate calibration on the ranker holdout; rank 0 runs it, every rank gets it."""
    if not config.calibrate_gates:
        return {"skipped": "calibrate_gates off"}
    world = current_world()
    gates = None
    if world.is_main:
        gates = calibrate_gates(
            fit.model, fit.ft, to_arrays(prep.parts.holdout, prep.feats, prep.mcfg.max_history)
        )
    return dict(broadcast_json(gates, world))


def _finish(
    config: TrainConfig, prep: _Prepared, fit: _Fit, gates: dict[str, Any], run: Path | None
) -> TrainResult:
    """Export the serving artifact and the result (rank 0); every rank returns the result."""
    final = Path(config.out)  # names and paths in the outputs are those of the committed run
    serving = final / "serving"
    if run is not None:
        model = fit.model.cpu()
        version = config.model_version or f"{final.name}-e{fit.best_epoch}"
        written = export_serving(
            model,
            prep.feats,
            prep.inputs.graph,
            run / "serving",
            version,
            extra={"dev_auc_dot": fit.best_auc, "dev_split": prep.parts.dev_name, "gate_calibration": gates},
        )
        serving = final / written.relative_to(run)
    result = TrainResult(
        run_dir=final,
        serving_dir=serving,
        best_epoch=fit.best_epoch,
        best_dev_auc=fit.best_auc,
        epochs_run=fit.epochs_run,
        history=fit.history,
        impressions_per_second=float(np.median([h["impressions_per_second"] for h in fit.history])),
    )
    if run is not None:
        (run / "train_result.json").write_text(result.model_dump_json(indent=2))
    return result
