"""What the ALS feature adds to a ranker call (`ArtifactModel.rank`), same run A/B.

The ranker service's work per request is `model.rank(user, history, candidates)`. This
calls it for real users (their first dev impression's history, last 50 ids) on their
retrieval top-200 (the dot-product scan), in interleaved rounds with the artifact's ALS
model attached (`after`) and detached (`before`: the feature column is then zero, all
else equal), and the ALS fold-in + scoring alone. Process CPU per call, median of the
per-round means; only the same-run ratio means anything on a shared machine.

    python bench/ranker_als_cost.py --serving RUN/serving --behaviors DATA/dev/behaviors.tsv
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")  # as the services run

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from serving_inputs import load_users  # noqa: E402

from newsrec.linalg import matmul_t, top_k  # noqa: E402
from newsrec.models.artifact import load_serving  # noqa: E402


def _cpu_ms(fn: Callable[[int], object], calls: int) -> float:
    t0 = time.process_time()
    for i in range(calls):
        fn(i)
    return (time.process_time() - t0) * 1e3 / calls


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--serving", type=Path, required=True)
    ap.add_argument("--behaviors", type=Path, required=True)
    ap.add_argument("--users", type=int, default=300)
    ap.add_argument("--calls", type=int, default=300)
    ap.add_argument("--rounds", type=int, default=5)
    a = ap.parse_args()
    model = load_serving(a.serving)  # one BLAS thread, as the services
    als = model.table.als
    if als is None or model.ranker is None:
        raise SystemExit(f"{a.serving}: no ranker or no als.safetensors")
    reqs = []
    for _, hist in load_users(a.behaviors, a.users, max_history=50):
        user, _ = model.encode_user(hist)
        _, idx = top_k(matmul_t(user[None, :], model.table.vectors), 200)
        ids = model.news_ids()
        reqs.append((user, hist, [ids[j] for j in idx[0]]))
    rows = [
        (
            np.array([r for h in hist if (r := model.row(h)) is not None]),
            np.array([model.row(c) for c in cands]),
        )
        for _, hist, cands in reqs
    ]

    def rank(i: int) -> object:
        u, h, c = reqs[i % len(reqs)]
        return model.rank(u, h, c)

    def als_only(i: int) -> object:
        h, c = rows[i % len(rows)]
        return als.scores(h, c)

    res: dict[str, list[float]] = {"before": [], "after": [], "als_only": []}
    for _ in range(a.rounds):
        model.table.als = None
        _cpu_ms(rank, 20)
        res["before"].append(_cpu_ms(rank, a.calls))
        model.table.als = als
        _cpu_ms(rank, 20)
        res["after"].append(_cpu_ms(rank, a.calls))
        res["als_only"].append(_cpu_ms(als_only, a.calls))
    med = {k: float(np.median(v)) for k, v in res.items()}
    print(f"{len(reqs)} users, 200 candidates, {a.rounds} rounds x {a.calls} calls, k = {als.factors}")
    for k, v in med.items():
        print(f"  {k:9s} {v:.3f} ms CPU per call (rounds: {', '.join(f'{x:.3f}' for x in res[k])})")
    print(f"  after / before = {med['after'] / med['before']:.2f}")


if __name__ == "__main__":
    main()
