"""What a smaller `gateway.retrieve_k` changes in what users see: the final top-k after the
ranker when it re-ranks the retrieval top-N, for several N against the default 200.

Serving does Retrieve(top-N, history excluded) -> Rank -> top-k. The retrieval search is
exact, so the top-100 candidates are the head of the top-200; the question is how often
the ranker's final top-k comes from beyond that head. Users and histories are the first
`--users` users of a behaviors file (as in `bench/serve_load.py`).

    .venv/bin/python bench/retrieve_k.py --serving RUN/serving --news DATA/train/news.tsv \
        --news DATA/dev/news.tsv --behaviors DATA/dev/behaviors.tsv
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from serving_inputs import add_serving_arguments, load_serving_variant, load_users, write_report  # noqa: E402

from newsrec.index.base import SearchFilters  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_serving_arguments(p, users=2000)
    p.add_argument("--k", type=int, default=10, help="items shown")
    p.add_argument("--sizes", default="50,100,150", help="retrieve_k values to compare with --base")
    p.add_argument("--base", type=int, default=200)
    p.add_argument("--out", type=Path, default=ROOT / "bench/out/retrieve_k.json")
    args = p.parse_args()

    variant = load_serving_variant(args.serving, args.news, "retrieve-k")
    model, index = variant.model, variant.index
    histories = dict(load_users(args.behaviors, args.users, max_history=50))

    sizes = [int(s) for s in args.sizes.split(",")]
    overlap: dict[int, list[float]] = {n: [] for n in sizes}
    same_list: dict[int, list[bool]] = {n: [] for n in sizes}
    deepest: list[int] = []  # retrieval position of the deepest item in the base top-k
    for history in histories.values():
        vector, _ = model.encode_user(history)
        hits = index.search(
            variant.alias, vector[None, :], args.base, SearchFilters(exclude_ids=tuple(history))
        )[0]
        ids = [h.news_id for h in hits]
        scores = np.asarray(model.rank(vector, history, ids))
        base_top = [ids[i] for i in np.argsort(-scores, kind="stable")[: args.k]]
        position = {news_id: i for i, news_id in enumerate(ids)}
        deepest.append(max(position[n] for n in base_top))
        for n in sizes:
            # the ranker scores each candidate on its own, so the top-n's scores are a prefix
            top = [ids[i] for i in np.argsort(-scores[:n], kind="stable")[: args.k]]
            overlap[n].append(len(set(top) & set(base_top)) / args.k)
            same_list[n].append(top == base_top)

    report: dict[str, Any] = {
        "users": len(deepest),
        "k": args.k,
        "base": args.base,
        "deepest_position_of_base_top_k": {
            "median": float(np.median(deepest)),
            "p90": float(np.percentile(deepest, 90)),
            "share_beyond": {str(n): float(np.mean(np.array(deepest) >= n)) for n in sizes},
        },
        "sizes": {
            str(n): {
                "mean_overlap_at_k": float(np.mean(overlap[n])),
                "same_list": float(np.mean(same_list[n])),
            }
            for n in sizes
        },
    }
    print(f"{len(deepest)} users; final top-{args.k} after ranking the retrieval top-N, vs N={args.base}")
    print(f"{'N':>5s} {'overlap@k':>10s} {'same list':>10s} {'users whose top-k reaches past N':>34s}")
    for n in sizes:
        s = report["sizes"][str(n)]
        beyond = report["deepest_position_of_base_top_k"]["share_beyond"][str(n)]
        print(f"{n:5d} {s['mean_overlap_at_k']:10.3f} {s['same_list']:10.3f} {beyond:34.3f}")
    write_report(args.out, report)


if __name__ == "__main__":
    main()
