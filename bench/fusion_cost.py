"""CPU cost of one news-tower forward+backward per fusion (the per-step part that differs).

    .venv/bin/python bench/fusion_cost.py [--articles 8192] [--repeats 6]

Interleaves the fusions so a loaded machine slows each alike; prints the trimmed mean
of process CPU time (not wall time) per step of `--articles` unique articles
(output_dim 64, 384-d text, 8 entity slots, single thread).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from newsrec.models.towers import ModelConfig, NewsTower  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--articles", type=int, default=8192)
    ap.add_argument("--repeats", type=int, default=6)
    args = ap.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    b, d, t, e = args.articles, 64, 384, 2000
    ids, text = torch.randint(0, 50000, (b,)), torch.randn(b, t)
    ent, table = torch.randint(-1, e, (b, 8)), torch.randn(e, d, requires_grad=True)
    fusions = ("attention", "gate", "residual")
    towers = {
        f: NewsTower(ModelConfig(output_dim=d, text_dim=t, num_id_rows=50000, fusion=f)).train()  # type: ignore[arg-type]
        for f in fusions
    }
    cpu: dict[str, list[float]] = {f: [] for f in fusions}
    for _ in range(args.repeats):
        for f, tower in towers.items():
            c0 = time.process_time()
            v, _ = tower(ids, text, ent, table)
            v.sum().backward()
            cpu[f].append(time.process_time() - c0)
    for f, xs in cpu.items():
        xs = sorted(xs)[1:-1] if len(xs) > 2 else xs
        print(f"{f:10s} {sum(xs) / len(xs) * 1000:7.1f} ms CPU per forward+backward of {b} articles")


if __name__ == "__main__":
    main()
