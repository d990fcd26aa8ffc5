"""One rank of the 2-process tests (tests/unit/train/test_distributed.py).

`python ddp_worker.py loss DATA OUT`, with torch.distributed's env (RANK, WORLD_SIZE,
MASTER_ADDR, MASTER_PORT): joins the group through the product's `distributed_from_env`,
computes its slice of a fixed global batch with the gathered in-batch negatives, and
rank 0 writes the loss and gradients the way DDP combines them (mean over ranks).
`build` is also what the test uses for the single-process reference.

`torchrun ... ddp_worker.py train TOY OUT`: `train_two_tower` with `exact_config`
(no randomness but the shared seeded streams), to compare with one process.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from safetensors.torch import save_file

from newsrec.models.towers import ModelConfig
from newsrec.models.two_tower import FeatureTensors, TwoTower
from newsrec.train.config import TrainConfig
from newsrec.train.data import make_samples, sample_negatives, to_arrays
from newsrec.train.distributed import Gather, distributed_from_env, split_sizes
from newsrec.train.prepare import labeled, load_inputs
from newsrec.train.two_tower import info_nce, train_two_tower

GLOBAL_BATCH = 37  # odd: the ranks' slices differ in size (19 and 18)
TEMPERATURE = 0.1


def build(data: Path) -> tuple[TwoTower, FeatureTensors, dict[str, torch.Tensor]]:
    """The towers (seeded, eval mode: no dropout) and one global batch from `data`."""
    torch.manual_seed(0)
    inputs = load_inputs(data, None)
    feats = inputs.features
    cfg = ModelConfig(
        output_dim=16,
        gnn_layers=1,
        use_llm=False,
        text_dim=feats.text.shape[1],
        num_id_rows=feats.num_id_rows,
    )
    model = TwoTower(cfg, inputs.graph).eval()
    ft = FeatureTensors(feats)
    arr = to_arrays(labeled(inputs.splits["train"].impressions), feats, cfg.max_history)
    samples = make_samples(arr)
    rng = np.random.default_rng(3)
    idx = rng.permutation(len(samples.imp))[:GLOBAL_BATCH]
    # A repeated positive: the same-article mask must work across the ranks' slices.
    idx[-1] = idx[0]
    imps = samples.imp[idx]
    counts = np.bincount(samples.pos, minlength=len(feats.ids)).astype(np.float64) + 1.0
    batch = {
        "hist": torch.from_numpy(arr.hist[imps]),
        "pos": torch.from_numpy(samples.pos[idx]),
        "neg": torch.from_numpy(sample_negatives(samples, imps, 4, rng)),
        "log_q": torch.from_numpy(np.log(counts / counts.sum()).astype(np.float32)),
    }
    return model, ft, batch


def grads(model: TwoTower) -> dict[str, torch.Tensor]:
    return {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}


def exact_config(toy: Path, out: Path, batch_size: int) -> TrainConfig:
    """A run on the toy set (`write_toy_dataset(toy)`) whose only randomness is the
    seeded permutation and negatives, which the ranks share: no dropout of any kind and
    no GNN (its entity-table dropout is fixed). Text vectors keep cold dev articles
    apart: with IDs alone they tie, and float noise would break the ties."""
    model = ModelConfig(output_dim=16, use_gnn=False, dropout=0.0, id_dropout=0.0, modality_dropout=0.0)
    return TrainConfig(
        data=toy / "data",
        embeddings=toy / "emb",
        out=out,
        epochs=2,
        batch_size=batch_size,
        progress=False,
        model=model,
    )


def loss_share(data: Path, out: Path) -> None:
    with distributed_from_env() as world:
        assert world.distributed, "run me with RANK / WORLD_SIZE set"
        model, ft, b = build(data)
        gather = Gather(world, split_sizes(GLOBAL_BATCH, world.size))
        mine = slice(gather.offset, gather.offset + gather.sizes[world.rank])
        loss = info_nce(
            model, ft, b["hist"][mine], b["pos"][mine], b["neg"][mine], b["log_q"], TEMPERATURE, gather
        )
        loss.backward()
        got = {"loss": loss.detach().reshape(1), **grads(model)}
        for t in got.values():  # DDP's combination: the mean over ranks
            dist.all_reduce(t)
            t /= world.size
        if world.is_main:
            save_file(got, str(out))


def train(data: Path, out: Path) -> None:
    with distributed_from_env() as world:
        assert world.distributed, "run me under torchrun"
        train_two_tower(exact_config(data, out, 32))


if __name__ == "__main__":
    torch.set_num_threads(1)
    {"loss": loss_share, "train": train}[sys.argv[1]](Path(sys.argv[2]), Path(sys.argv[3]))
