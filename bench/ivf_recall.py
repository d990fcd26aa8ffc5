"""Would an approximate (IVF) scan in the retrieval mirror change what users see?

The exact scan over all articles is the largest piece of the retrieval handler. An IVF
index (k-means lists; a query scans only the `nprobe` lists whose centroids score best,
as Milvus' IVF_FLAT does) reads a fraction of the table. This measures, per `nprobe`:

- the share of the table scanned, and the search CPU (back to back, median) against the
  exact scan in the same run;
- recall@N of the retrieval top-N (history excluded) against the exact top-N;
- the overlap of the final top-k after the ranker re-ranks the approximate vs the exact
  top-N: what a user would see change (the ranker reaches deep into the list, see
  `bench/retrieve_k.py`, so recall@N alone understates the effect).

A measurement, not a shipped index. Users and histories are the first `--users` users of
a behaviors file, as in `bench/serve_load.py`.

    .venv/bin/python bench/ivf_recall.py --serving RUN/serving --news DATA/train/news.tsv \
        --news DATA/dev/news.tsv --behaviors DATA/dev/behaviors.tsv
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from serving_inputs import add_serving_arguments, load_serving_variant, load_users, write_report  # noqa: E402

from newsrec.linalg import top_k  # noqa: E402


def spherical_kmeans(x: np.ndarray, lists: int, iters: int, seed: int = 0) -> np.ndarray:
    """Centroids (lists, dim) of unit-norm rows by inner product (Lloyd's, on all rows)."""
    rng = np.random.default_rng(seed)
    cent = x[rng.choice(len(x), lists, replace=False)].copy()
    for _ in range(iters):
        assign = np.argmax(x @ cent.T, axis=1)
        for c in range(lists):
            members = x[assign == c]
            if len(members):
                v = members.sum(0)
                cent[c] = v / max(float(np.linalg.norm(v)), 1e-12)
    return cent


class Ivf:
    """Rows grouped by list, each list contiguous, so a probe is a slice."""

    def __init__(self, vectors: np.ndarray, centroids: np.ndarray) -> None:
        assign = np.argmax(vectors @ centroids.T, axis=1)
        self.order = np.argsort(assign, kind="stable")  # new position -> original row
        self.vectors = np.ascontiguousarray(vectors[self.order])
        counts = np.bincount(assign, minlength=len(centroids))
        self.starts = np.concatenate([[0], np.cumsum(counts)])
        self.centroids = centroids

    def search(self, q: np.ndarray, k: int, nprobe: int, excluded: np.ndarray) -> tuple[np.ndarray, int]:
        """(original rows of the top-k, rows scanned)."""
        probes = np.argpartition(-(self.centroids @ q), nprobe - 1)[:nprobe]
        spans = [np.arange(self.starts[c], self.starts[c + 1]) for c in probes]
        pos = np.concatenate(spans)
        scores = self.vectors[pos] @ q
        rows = self.order[pos]
        scores[np.isin(rows, excluded)] = -np.inf
        _, best = top_k(scores[None, :], min(k, len(pos)))
        return rows[best[0]], len(pos)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_serving_arguments(p, users=2000)
    p.add_argument("--lists", type=int, default=256)
    p.add_argument("--nprobe", default="8,16,32,64")
    p.add_argument("--retrieve-k", type=int, default=200)
    p.add_argument("--k", type=int, default=10, help="items shown")
    p.add_argument("--out", type=Path, default=ROOT / "bench/out/ivf_recall.json")
    args = p.parse_args()

    variant = load_serving_variant(args.serving, args.news, "ivf-recall")
    model = variant.model
    snap = variant.index.snapshot(variant.alias)  # the exact in-memory mirror
    table, ids = snap.vectors, snap.ids
    t0 = time.perf_counter()
    ivf = Ivf(table, spherical_kmeans(table, args.lists, iters=10))
    print(f"{len(ids)} rows, {args.lists} lists, k-means {time.perf_counter() - t0:.1f} s", flush=True)

    probes = [int(n) for n in args.nprobe.split(",")]
    n_top = args.retrieve_k
    recall: dict[int, list[float]] = {n: [] for n in probes}
    shown: dict[int, list[float]] = {n: [] for n in probes}
    scanned: dict[int, list[int]] = {n: [] for n in probes}
    cpu: dict[str, list[float]] = {"exact": [], **{str(n): [] for n in probes}}
    users = load_users(args.behaviors, args.users, max_history=50)
    for _user, history in users:
        vector, _ = model.encode_user(history)
        excluded = np.array([snap.row_of[h] for h in history if h in snap.row_of], dtype=np.int64)
        c0 = time.process_time()
        scores = table @ vector
        scores[excluded] = -np.inf
        _, best = top_k(scores[None, :], n_top)
        cpu["exact"].append(time.process_time() - c0)
        exact_rows = best[0]
        exact_ids = [ids[r] for r in exact_rows]
        exact_shown = set(_final(model, vector, history, exact_ids, args.k))
        for n in probes:
            c0 = time.process_time()
            rows, count = ivf.search(vector, n_top, n, excluded)
            cpu[str(n)].append(time.process_time() - c0)
            approx_ids = [ids[r] for r in rows]
            recall[n].append(len(set(rows.tolist()) & set(exact_rows.tolist())) / n_top)
            approx_shown = set(_final(model, vector, history, approx_ids, args.k))
            shown[n].append(len(approx_shown & exact_shown) / args.k)
            scanned[n].append(count)

    exact_ms = float(np.median(cpu["exact"]) * 1e3)
    report: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "rows": len(ids),
        "lists": args.lists,
        "users": len(users),
        "retrieve_k": n_top,
        "k": args.k,
        "exact_search_cpu_ms_median": exact_ms,
        "nprobe": {
            str(n): {
                "scanned_share": float(np.mean(scanned[n]) / len(ids)),
                "search_cpu_ms_median": float(np.median(cpu[str(n)]) * 1e3),
                "recall_at_retrieve_k": float(np.mean(recall[n])),
                "final_top_k_overlap": float(np.mean(shown[n])),
                "users_with_same_final_set": float(np.mean(np.array(shown[n]) == 1.0)),
            }
            for n in probes
        },
    }
    print(f"{len(users)} users; exact search {exact_ms:.2f} ms CPU (median, back to back)")
    recall_head = f"recall@{n_top}"
    print(f"{'nprobe':>6s} {'scanned':>8s} {'CPU ms':>7s} {recall_head:>11s} {'final top-k overlap':>20s}")
    for n in probes:
        r = report["nprobe"][str(n)]
        print(
            f"{n:6d} {r['scanned_share']:8.3f} {r['search_cpu_ms_median']:7.2f} "
            f"{r['recall_at_retrieve_k']:11.3f} {r['final_top_k_overlap']:20.3f}"
        )
    write_report(args.out, report)


def _final(model: Any, vector: np.ndarray, history: list[str], candidates: list[str], k: int) -> list[str]:
    """The ids the ranker would show out of `candidates`."""
    scores = np.asarray(model.rank(vector, history, candidates))
    return [candidates[i] for i in np.argsort(-scores, kind="stable")[:k]]


if __name__ == "__main__":
    main()
