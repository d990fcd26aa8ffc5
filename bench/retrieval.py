"""Retrieval benchmark: top-k latency and recall@k of Milvus Lite index types vs an exact numpy scan.

    .venv/bin/python bench/retrieval.py                       # 10k + 100k (+ 1M exact/memory), dim 256
    .venv/bin/python bench/retrieval.py --sizes 10000 --dim 64

Vectors: synthetic clustered unit vectors (a mixture of topic centres plus noise, the
shape of news-tower outputs: a few hundred tight topical clusters), not uniform noise.
Queries are user-like: a mix of 1-3 centres plus noise. Every figure is compared with the
exact scan measured in the same run (the machine is shared; absolute numbers are noisy).
Writes bench/out/retrieval.json and docs/img/retrieval_latency.png.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")  # before numpy: one BLAS thread, like one serving worker

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from newsrec.index import NewsRecord  # noqa: E402
from newsrec.index.memory import Snapshot, exact_search  # noqa: E402
from newsrec.index.milvus import IndexSpec, MilvusIndex  # noqa: E402


def clustered(n: int, dim: int, rng: np.random.Generator, clusters: int = 300) -> np.ndarray:
    centres = rng.normal(size=(clusters, dim)).astype(np.float32)
    assign = rng.integers(0, clusters, size=n)
    x = centres[assign] + 0.6 * rng.normal(size=(n, dim)).astype(np.float32)
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def user_queries(base: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    picks = rng.integers(0, len(base), size=(n, 3))
    q = base[picks].sum(axis=1) + 0.3 * rng.normal(size=(n, base.shape[1])).astype(np.float32)
    return (q / np.linalg.norm(q, axis=1, keepdims=True)).astype(np.float32)


def timed(fn: Any, reps: int) -> tuple[float, float]:
    """(p50, p99) in milliseconds over `reps` calls (after one warm-up call)."""
    fn(0)
    lat = []
    for i in range(reps):
        t = time.perf_counter()
        fn(i)
        lat.append((time.perf_counter() - t) * 1e3)
    return float(np.percentile(lat, 50)), float(np.percentile(lat, 99))


def recall(found: list[list[str]], truth: np.ndarray, ids: list[str]) -> float:
    hits = [len(set(f) & {ids[j] for j in t}) / len(t) for f, t in zip(found, truth, strict=True)]
    return float(np.mean(hits))


def bench_size(
    n: int, dim: int, k: int, reps: int, types: list[str], budget_s: float, tmp: Path
) -> list[dict]:
    rng = np.random.default_rng(n)
    base = clustered(n, dim, rng)
    ids = [f"N{i}" for i in range(n)]
    q1 = user_queries(base, reps + 1, rng)
    qb = user_queries(base, 32 * (reps // 4 + 1), rng).reshape(-1, 32, dim)
    truth, _ = exact_search(base, q1, k)
    rows: list[dict] = []

    def row(
        name: str, single: tuple[float, float], batch: tuple[float, float], rec: float, **kw: Any
    ) -> None:  # noqa: E501
        r = {"n": n, "dim": dim, "type": name, "p50_ms": single[0], "p99_ms": single[1]}
        r.update({"batch32_p50_ms": batch[0], "batch32_p99_ms": batch[1], "recall": rec, **kw})
        rows.append(r)
        print(json.dumps(r), flush=True)

    row(
        "exact-numpy",
        timed(lambda i: exact_search(base, q1[i : i + 1], k), reps),
        timed(lambda i: exact_search(base, qb[i % len(qb)], k), max(5, reps // 4)),
        1.0,
    )
    recs = [NewsRecord(ids[i], base[i], f"c{i % 20}", "s", i, "v1") for i in range(n)]
    snap = Snapshot.from_records("bench", recs)
    found = [[h.news_id for h in snap.search(q1[i : i + 1], k, None)[0]] for i in range(reps)]
    row(
        "memory-mirror",
        timed(lambda i: snap.search(q1[i : i + 1], k, None), reps),
        timed(lambda i: snap.search(qb[i % len(qb)], k, None), max(5, reps // 4)),
        recall(found, truth[:reps], ids),
    )
    rate = None  # rows/s of the first Milvus insert, to predict the next ones
    for t in types:
        if rate is not None and n / rate > budget_s:
            print(f"skip {t} at n={n}: insert would take ~{n / rate:.0f} s (> {budget_s:.0f} s)", flush=True)
            continue
        nlist = max(16, int(4 * np.sqrt(n)))
        spec = IndexSpec(t, nlist=nlist, nprobe=max(16, nlist // 8))
        idx = MilvusIndex.from_uri(str(tmp / f"{t}_{n}.db"), spec=spec, batch_size=5000)
        try:
            start = time.perf_counter()
            idx.build_version("news_bench", "v1", recs)
            build_s = time.perf_counter() - start
            rate = n / build_s
            res = idx.search("news_bench", q1[:reps], k)
            found = [[h.news_id for h in hits] for hits in res]
            row(
                f"milvus-{t}",
                timed(lambda i, idx=idx: idx.search("news_bench", q1[i : i + 1], k), reps),
                timed(lambda i, idx=idx: idx.search("news_bench", qb[i % len(qb)], k), max(5, reps // 4)),
                recall(found, truth[:reps], ids),
                build_s=build_s,
                nlist=spec.nlist if t == "IVF_FLAT" else None,
                nprobe=spec.nprobe if t == "IVF_FLAT" else None,
            )
        finally:
            idx.close(stop_lite=True)
    return rows


def plot(rows: list[dict], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    panels = ((axes[0], "p99_ms", "single query p99"), (axes[1], "batch32_p99_ms", "batch of 32 p99"))
    for ax, key, title in panels:
        for t in dict.fromkeys(r["type"] for r in rows):
            pts = [(r["n"], r[key]) for r in rows if r["type"] == t]
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=t)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("vectors")
        ax.set_ylabel("ms")
        ax.set_title(f"top-{rows[0].get('k', 100)} {title}")
        ax.grid(True, alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="10000,100000,1000000")
    ap.add_argument("--dim", type=int, default=256)
    ap.add_argument("--k", type=int, default=100)
    ap.add_argument("--reps", type=int, default=100)
    ap.add_argument("--types", default="FLAT,IVF_FLAT,AUTOINDEX")
    ap.add_argument("--insert-budget-s", type=float, default=120.0, help="skip Milvus types slower to build")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "out" / "retrieval.json")
    args = ap.parse_args()
    rows: list[dict] = []
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-retrieval-") as tmp:
        for n in (int(s) for s in args.sizes.split(",")):
            types = args.types.split(",") if n <= 100_000 else []
            if n > 100_000:
                print(f"n={n}: Milvus Lite skipped (inserting 100k takes minutes here); exact + memory only")
            rows += bench_size(n, args.dim, args.k, args.reps, types, args.insert_budget_s, Path(tmp))
    for r in rows:
        r["k"] = args.k
        exact = next(e for e in rows if e["n"] == r["n"] and e["type"] == "exact-numpy")
        r["p99_vs_exact"] = r["p99_ms"] / exact["p99_ms"]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    meta = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "cpus": os.cpu_count()}
    args.out.write_text(json.dumps({**meta, "wall_s": time.perf_counter() - started, "rows": rows}, indent=2))
    plot(rows, ROOT / "docs" / "img" / "retrieval_latency.png")
    print(f"{'n':>8} {'type':<16} {'p50':>7} {'p99':>7} {'b32 p99':>8} {'recall':>6} {'p99/exact':>9}")
    for r in rows:
        print(
            f"{r['n']:>8} {r['type']:<16} {r['p50_ms']:>7.2f} {r['p99_ms']:>7.2f} "
            f"{r['batch32_p99_ms']:>8.2f} {r['recall']:>6.3f} {r['p99_vs_exact']:>9.2f}"
        )


if __name__ == "__main__":
    main()
