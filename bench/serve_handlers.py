"""CPU per call of the retrieval and ranking handlers in-process, back to back vs spaced out.

Why: the split-mode load test charges each service 2-3x the CPU that the same handler costs
in a tight loop. This script calls the real servicers (the artifact's model, Milvus Lite
with the exact in-memory mirror, the news catalog) without gRPC, with the request and
response serialisation they do over the wire, in two schedules interleaved in one run:

- `back_to_back`: one call after another (hot caches, the figure a micro-benchmark gives);
- `spaced`: one call every `--gap-ms` (10 ms = one service's share of 100 RPS), the CPU
  and caches idle or busy with other work in between, as in the load test.

It also times the retrieval scan (`matmul_t` over the whole table) alone, and the same
scan through torch (the kernel before numpy with one BLAS thread); and the top-200 of
the scan's scores with `newsrec.linalg.top_k` (numpy) and with `torch.topk` (before). Medians of
per-round means; only same-run ratios mean anything on a shared machine.

    .venv/bin/python bench/serve_handlers.py --serving RUN/serving \
        --news DATA/train/news.tsv --news DATA/dev/news.tsv --behaviors DATA/dev/behaviors.tsv
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")  # as the services run (helm chart, serve_load.py)

import numpy as np  # noqa: E402
import torch  # noqa: E402
from prometheus_client import CollectorRegistry  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from serving_inputs import add_serving_arguments, load_serving_variant, load_users, write_report  # noqa: E402

from newsrec.linalg import matmul_t, top_k  # noqa: E402
from services import ranker, retrieval  # noqa: E402
from services.generated.newsrec.v1 import common_pb2, ranking_pb2, retrieval_pb2  # noqa: E402
from services.metrics import RankerMetrics, RetrievalMetrics  # noqa: E402


class _Context:
    """What the servicers ask of a gRPC context."""

    def time_remaining(self) -> None:
        return None


def _cpu_ms_per_call(fn: Callable[[int], Any], calls: int, gap_s: float) -> float:
    """Mean process CPU (ms) of `fn(i)` over `calls` calls, sleeping `gap_s` between them."""
    total = 0.0
    for i in range(calls):
        if gap_s:
            time.sleep(gap_s)
        t0 = time.process_time()
        fn(i)
        total += time.process_time() - t0
    return total * 1e3 / calls


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_serving_arguments(p, users=300)
    p.add_argument("--calls", type=int, default=200, help="calls per schedule per round")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--gap-ms", type=float, default=10.0)
    p.add_argument("--out", type=Path, default=ROOT / "bench/out/serve_handlers.json")
    args = p.parse_args()

    print("loading the model, the catalog and Milvus Lite ...", flush=True)
    variant = load_serving_variant(args.serving, args.news, "serve-handlers")
    model = variant.model
    retrieve = retrieval.RetrievalServicer("bench", RetrievalMetrics.of(CollectorRegistry()))
    retrieve.deps = retrieval.RetrievalDeps(variant.index, variant.alias, model, variant.catalog)
    rank = ranker.RankingServicer("bench", RankerMetrics.of(CollectorRegistry()))
    rank.deps = ranker.RankerDeps(model)

    retrieve_wire, users = [], []
    for user, history in load_users(args.behaviors, args.users, max_history=50):
        vector, _ = model.encode_user(history)
        users.append((user, history, vector.tolist()))
        request = retrieval_pb2.RetrieveRequest(
            vector=vector.tolist(), k=200, filters=common_pb2.RetrievalFilters(exclude_ids=history)
        )
        retrieve_wire.append(request.SerializeToString())
    ctx = _Context()
    candidates = [
        list(retrieve.Retrieve(retrieval_pb2.RetrieveRequest.FromString(raw), ctx).news_ids)  # type: ignore[arg-type]
        for raw in retrieve_wire
    ]
    rank_wire = [
        ranking_pb2.RankRequest(
            user_id=u, user_vector=v, history_ids=h, candidate_ids=c, top_k=10
        ).SerializeToString()
        for (u, h, v), c in zip(users, candidates, strict=True)
    ]
    table = variant.index.snapshot(variant.alias).vectors  # type: ignore[attr-defined]
    queries = [np.asarray(u[2], np.float32)[None, :] for u in users]

    def one_retrieve(i: int) -> None:
        request = retrieval_pb2.RetrieveRequest.FromString(retrieve_wire[i % len(retrieve_wire)])
        retrieve.Retrieve(request, ctx).SerializeToString()  # type: ignore[arg-type]

    def one_rank(i: int) -> None:
        request = ranking_pb2.RankRequest.FromString(rank_wire[i % len(rank_wire)])
        rank.Rank(request, ctx).SerializeToString()  # type: ignore[arg-type]

    def one_scan(i: int) -> None:
        matmul_t(queries[i % len(queries)], table)

    torch_table = torch.from_numpy(table)

    def one_scan_torch(i: int) -> None:  # the previous kernel, for the same-run comparison
        (torch.from_numpy(queries[i % len(queries)]) @ torch_table.T).numpy()

    scores = [matmul_t(q, table) for q in queries]

    def one_top_k(i: int) -> None:
        top_k(scores[i % len(scores)], 200)

    def one_top_k_torch(i: int) -> None:  # the previous kernel
        torch.topk(torch.from_numpy(scores[i % len(scores)]), 200, dim=1, sorted=True)

    handlers = {
        "retrieve": one_retrieve,
        "rank": one_rank,
        "scan": one_scan,
        "scan_torch": one_scan_torch,
        "top_k": one_top_k,
        "top_k_torch": one_top_k_torch,
    }
    rounds: dict[str, dict[str, list[float]]] = {h: {"back_to_back": [], "spaced": []} for h in handlers}
    for fn in handlers.values():
        _cpu_ms_per_call(fn, 30, 0.0)  # warm-up
    for r in range(args.rounds):
        for name, fn in handlers.items():
            rounds[name]["back_to_back"].append(_cpu_ms_per_call(fn, args.calls, 0.0))
            rounds[name]["spaced"].append(_cpu_ms_per_call(fn, args.calls, args.gap_ms / 1e3))
        print(f"round {r + 1}/{args.rounds} done", flush=True)

    report: dict[str, Any] = {
        "table_rows": int(table.shape[0]),
        "dim": int(table.shape[1]),
        "gap_ms": args.gap_ms,
        "calls_per_round": args.calls,
        "rounds": rounds,
        "median_ms": {},
    }
    print(f"\nCPU ms per call (median of {args.rounds} rounds of {args.calls} calls; table {table.shape})")
    print(f"{'handler':10s} {'back to back':>13s} {'every ' + str(args.gap_ms) + ' ms':>15s} {'ratio':>7s}")
    for name, sched in rounds.items():
        hot, spaced = float(np.median(sched["back_to_back"])), float(np.median(sched["spaced"]))
        report["median_ms"][name] = {"back_to_back": hot, "spaced": spaced, "ratio": spaced / hot}
        print(f"{name:10s} {hot:13.3f} {spaced:15.3f} {spaced / hot:7.2f}")
    write_report(args.out, report)


if __name__ == "__main__":
    main()
