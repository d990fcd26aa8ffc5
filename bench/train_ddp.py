"""Time per training epoch on one process vs several (DDP under torchrun).

    .venv/bin/python bench/train_ddp.py --data DIR [--embeddings EMB] [--impressions 30000]
        [--global-batch 256] [--repeats 2] [--nproc 2]

Runs `newsrec train --epochs 1 --no-ranker` on a subsample of train impressions in
three set-ups with the same global batch, interleaved `--repeats` times:
`1proc-1thread`, `1proc-Nthreads` (one process using all N cores) and `Nproc`
(`--nproc N`, 1 thread each, per-rank batch = global / N). Reports the median epoch
time (the training loop on rank 0, `train_seconds` in metrics.jsonl), the run's wall
time (load, dev AUC, export included), best dev AUC, and ratios to `1proc-1thread`.
Writes bench/out/train_ddp.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

NEWSREC = [sys.executable, "-c", "from newsrec.cli import main; main()"]


def run_once(args: argparse.Namespace, setup: str, out: Path) -> dict[str, float]:
    n = args.nproc
    cmd = [*NEWSREC, "train", "--data", str(args.data), "--out", str(out), "--epochs", "1", "--no-ranker"]
    cmd += ["--max-train-impressions", str(args.impressions), "--seed", "0"]
    cmd += ["--embeddings", str(args.embeddings)] if args.embeddings else ["--no-llm"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    if setup == "1proc-1thread":
        cmd += ["--batch-size", str(args.global_batch), "--threads", "1"]
    elif setup.startswith("1proc"):
        cmd += ["--batch-size", str(args.global_batch), "--threads", str(n)]
        env["OMP_NUM_THREADS"] = str(n)
    else:
        cmd += ["--batch-size", str(args.global_batch // n), "--nproc", str(n)]
    t0 = time.perf_counter()
    subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - t0
    row = json.loads((out / "metrics.jsonl").read_text().splitlines()[0])
    return {"epoch_seconds": row["train_seconds"], "wall_seconds": wall, "dev_auc": row["dev_auc"]}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--embeddings", type=Path)
    ap.add_argument("--impressions", type=int, default=30000)
    ap.add_argument("--global-batch", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--nproc", type=int, default=2)
    args = ap.parse_args()
    setups = ["1proc-1thread", f"1proc-{args.nproc}threads", f"{args.nproc}proc"]
    got: dict[str, list[dict[str, float]]] = {s: [] for s in setups}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.repeats):
            for s in setups:
                got[s].append(run_once(args, s, Path(tmp) / f"{s}-{r}"))
                print(s, r, got[s][-1], flush=True)
    base = statistics.median(x["epoch_seconds"] for x in got[setups[0]])
    summary = {}
    for s in setups:
        med = {
            k: statistics.median(x[k] for x in got[s]) for k in ("epoch_seconds", "wall_seconds", "dev_auc")
        }
        summary[s] = {**med, "epoch_ratio_to_1proc_1thread": med["epoch_seconds"] / base, "runs": got[s]}
    print(f"{'setup':16} {'epoch s':>8} {'ratio':>6} {'wall s':>7} {'dev AUC':>8}")
    for s, m in summary.items():
        print(
            f"{s:16} {m['epoch_seconds']:8.1f} {m['epoch_ratio_to_1proc_1thread']:6.2f} "
            f"{m['wall_seconds']:7.1f} {m['dev_auc']:8.4f}"
        )
    out = Path(__file__).parent / "out" / "train_ddp.json"
    out.parent.mkdir(exist_ok=True)
    meta = {"impressions": args.impressions, "global_batch": args.global_batch, "nproc": args.nproc}
    out.write_text(json.dumps({**meta, "data": str(args.data), "setups": summary}, indent=2))


if __name__ == "__main__":
    main()
