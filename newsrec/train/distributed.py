"""Training on several processes with torch.distributed (launched by torchrun).

A run under `torchrun --nproc_per_node N -m newsrec.train ...` (or `newsrec train
--nproc N`, which execs torchrun) joins the process group torchrun describes in the
environment (WORLD_SIZE, RANK, LOCAL_RANK, MASTER_ADDR, MASTER_PORT): gloo on CPU, nccl
when CUDA is available. The towers are wrapped in DistributedDataParallel; what else
travels between the ranks is here: the in-batch item vectors (`Gather`, with their
gradient), the dev AUC and the gate calibration rank 0 computes (`broadcast_float`,
`broadcast_json`), and the per-step losses for the log (`mean_over_ranks`).

No process is started here: torchrun owns the processes (no home-made pool).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

# How long a rank waits at a collective: the others may be evaluating or training the
# ranker on rank 0 meanwhile, which takes minutes to an hour at MIND-large size.
TIMEOUT = timedelta(hours=4)


@dataclass(frozen=True)
class World:
    """This process's place in the job; `World()` is a plain single-process run."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0
    group: Any = field(default=None, compare=False)  # process group of the item-vector gather
    control: Any = field(default=None, compare=False)  # gloo group of the CPU scalars and JSON

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1


_GROUPS: tuple[Any, Any] = (None, None)


def current_world() -> World:
    """The job this process is in (`World()` unless a process group is initialised)."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return World()
    local = int(os.environ.get("LOCAL_RANK", dist.get_rank()))
    return World(dist.get_rank(), dist.get_world_size(), local, *_GROUPS)


def backend() -> str:
    return "nccl" if torch.cuda.is_available() else "gloo"


@contextmanager
def distributed_from_env() -> Iterator[World]:
    """Join the process group torchrun set up in the environment for the duration of
    the block; without WORLD_SIZE > 1 (a plain run) it does nothing and yields `World()`.

    On a clean exit every rank waits at a barrier, so the other ranks leave (exit 0)
    only after rank 0 has written and committed the run."""
    global _GROUPS
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or dist.is_initialized():
        yield current_world()
        return
    name = backend()
    if name == "nccl":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group(name, timeout=TIMEOUT)
    try:
        # Groups of their own: the gather's collectives (some in backward) can never
        # interleave with DDP's gradient all-reduces on the default group; the control
        # messages are CPU tensors, which nccl cannot carry.
        gather = dist.new_group(backend=name, timeout=TIMEOUT)
        control = gather if name == "gloo" else dist.new_group(backend="gloo", timeout=TIMEOUT)
        _GROUPS = (gather, control)
        yield current_world()
        dist.barrier()
    finally:
        _GROUPS = (None, None)
        dist.destroy_process_group()


def split_sizes(n: int, world: int) -> list[int]:
    """Sizes of the ranks' slices of a global batch of `n` (as `np.array_split`)."""
    return [len(p) for p in np.array_split(np.arange(n), world)]


class _GatherRows(torch.autograd.Function):
    """All ranks' rows, concatenated in rank order; the backward hands each rank the sum
    of every rank's gradient for its own rows (each rank's loss uses all rows)."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, sizes: list[int], rank: int, group: Any) -> torch.Tensor:
        ctx.sizes, ctx.rank, ctx.group = sizes, rank, group
        return _gather_padded(x, sizes, group)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None, None, None]:
        g = grad.contiguous().clone()
        dist.all_reduce(g, group=ctx.group)
        start = sum(ctx.sizes[: ctx.rank])
        return g[start : start + ctx.sizes[ctx.rank]], None, None, None


def _gather_padded(x: torch.Tensor, sizes: Sequence[int], group: Any) -> torch.Tensor:
    """all_gather needs equal shapes: pad every slice to the largest, then trim."""
    pad = x.new_zeros((max(sizes), *x.shape[1:]))
    pad[: x.shape[0]] = x
    out = [torch.empty_like(pad) for _ in sizes]
    dist.all_gather(out, pad, group=group)
    return torch.cat([o[:n] for o, n in zip(out, sizes, strict=True)])


@dataclass(frozen=True)
class Gather:
    """How one rank's slice of a global batch joins the others for the in-batch
    negatives: every rank's slice size (known to all, no exchange needed)."""

    world: World
    sizes: list[int]

    @property
    def offset(self) -> int:
        """Row of this rank's first sample in the global batch."""
        return sum(self.sizes[: self.world.rank])

    @property
    def total(self) -> int:
        return sum(self.sizes)

    def rows(self, x: torch.Tensor) -> torch.Tensor:
        """Every rank's `x` (vectors), the gradient flowing back to each rank's own part."""
        out: torch.Tensor = _GatherRows.apply(x, self.sizes, self.world.rank, self.world.group)
        return out

    def ids(self, x: torch.Tensor) -> torch.Tensor:
        """Every rank's `x` (integers, no gradient)."""
        return _gather_padded(x, self.sizes, self.world.group)


def broadcast_float(value: float, world: World) -> float:
    """Rank 0's `value` on every rank."""
    if not world.distributed:
        return value
    t = torch.tensor([value], dtype=torch.float64)
    dist.broadcast(t, 0, group=world.control)
    return float(t.item())


def broadcast_json(value: Any, world: World) -> Any:
    """Rank 0's JSON-able `value` on every rank (as UTF-8 bytes, no pickle)."""
    if not world.distributed:
        return value
    data = json.dumps(value).encode() if world.is_main else b""
    n = torch.tensor([len(data)], dtype=torch.int64)
    dist.broadcast(n, 0, group=world.control)
    buf = torch.zeros(int(n.item()), dtype=torch.uint8)
    if world.is_main:
        buf[:] = torch.frombuffer(bytearray(data), dtype=torch.uint8)
    dist.broadcast(buf, 0, group=world.control)
    return json.loads(bytes(buf.tolist()).decode())


def mean_over_ranks(values: list[float], world: World) -> list[float]:
    """Element-wise mean of each rank's `values` (the same length on every rank)."""
    if not world.distributed or not values:
        return values
    t = torch.tensor(values, dtype=torch.float64)
    dist.all_reduce(t, group=world.control)
    return (t / world.size).tolist()
