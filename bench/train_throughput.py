"""Training throughput (impressions/s) and serving latency of the models.

    .venv/bin/python bench/train_throughput.py --data DIR --embeddings EMB [--impressions 20000]

Training: one epoch over a subsample of train impressions, for the `id` baseline
and the full `id+llm+gnn` model, `--repeats` times each, interleaved; medians and
the full/baseline ratio are printed. Serving: `encode_user` (50 history ids) and
`rank` (200 candidates) of the full model's artifact, median and p95 over
`--calls` calls, single thread. Writes bench/out/train_throughput.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from newsrec.models import load_serving
from newsrec.models.towers import ModelConfig
from newsrec.train.config import RankerConfig, TrainConfig
from newsrec.train.prepare import load_inputs
from newsrec.train.ranker import train_ranker
from newsrec.train.two_tower import train_two_tower

VARIANTS = {
    "id": {"use_llm": False, "use_gnn": False},
    "id+llm+gnn": {},
}


def serving_latency(serving: Path, calls: int) -> dict[str, object]:
    """Median/p95 ms of encode_user (50 ids) and rank (200 candidates, with the ranker);
    the dot product over the same 200 candidates is the baseline."""
    torch.set_num_threads(1)
    model = load_serving(serving)
    rng = np.random.default_rng(0)
    ids = model.news_ids()
    enc, rank, dot = [], [], []
    for _ in range(calls):
        hist = [ids[i] for i in rng.choice(len(ids), 50, replace=False)]
        cands = [ids[i] for i in rng.choice(len(ids), 200, replace=False)]
        a = time.perf_counter()
        u, _ = model.encode_user(hist)
        b = time.perf_counter()
        model.rank(u, hist, cands)
        c = time.perf_counter()
        rows = np.array([model.row(x) for x in cands])
        model.news_vectors()[rows] @ u
        d = time.perf_counter()
        enc.append((b - a) * 1e3)
        rank.append((c - b) * 1e3)
        dot.append((d - c) * 1e3)

    def stats(xs: list[float]) -> dict[str, float]:
        return {"median": statistics.median(xs), "p95": float(np.percentile(xs, 95))}

    return {
        "serving_dir": str(serving),
        "has_ranker": model.ranker is not None,
        "serving_ms": {"encode_user_50": stats(enc), "rank_200": stats(rank), "dot_200_baseline": stats(dot)},
        "rank_over_dot_ratio": statistics.median(rank) / statistics.median(dot),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path)
    ap.add_argument("--embeddings", type=Path)
    ap.add_argument("--impressions", type=int, default=20000)
    ap.add_argument("--output-dim", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--calls", type=int, default=300)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=Path("bench/out/train_throughput.json"))
    ap.add_argument("--serving", type=Path, help="only measure serving latency of this serving/ dir")
    args = ap.parse_args()
    if args.serving is not None:
        result = {
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            **serving_latency(args.serving, args.calls),
        }
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.with_name("serving_latency.json").write_text(json.dumps(result, indent=2))
        print(json.dumps(result, indent=2))
        return
    if args.data is None or args.embeddings is None:
        ap.error("--data and --embeddings are required unless --serving is given")
    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    inputs = load_inputs(args.data, args.embeddings)
    load_s = time.perf_counter() - t0
    rates: dict[str, list[float]] = {k: [] for k in VARIANTS}
    tmp = Path(tempfile.mkdtemp(prefix="bench-train-"))
    for r in range(args.repeats):
        for name, flags in VARIANTS.items():
            res = train_two_tower(
                TrainConfig(
                    data=args.data,
                    embeddings=args.embeddings,
                    out=tmp / f"{name}-{r}",
                    epochs=1,
                    max_train_impressions=args.impressions,
                    max_dev_impressions=2000,
                    model=ModelConfig(output_dim=args.output_dim, **flags),  # type: ignore[arg-type]
                    progress=False,
                ),
                inputs,
            )
            rates[name].append(res.history[0]["impressions_per_second"])
    med = {k: statistics.median(v) for k, v in rates.items()}
    full_run = tmp / "id+llm+gnn-0"
    train_ranker(RankerConfig(run=full_run, data=args.data, epochs=2, max_dev_impressions=500), inputs.splits)
    result = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "train_impressions": args.impressions,
        "output_dim": args.output_dim,
        "threads": args.threads,
        "load_seconds": load_s,
        "impressions_per_second": {k: {"median": med[k], "runs": v} for k, v in rates.items()},
        "full_over_id_ratio": med["id+llm+gnn"] / med["id"],
        "epoch_minutes_150k_full": 150_000 / med["id+llm+gnn"] / 60,
        **serving_latency(full_run / "serving", args.calls),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
