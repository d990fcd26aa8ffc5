"""Retrieval through a real Milvus server vs the in-memory mirror vs an exact numpy scan.

    .venv/bin/python bench/retrieval_server.py                 # 100k vectors, dim 64, top-200
    .venv/bin/python bench/retrieval_server.py --n 20000 --types FLAT,HNSW

Starts the embedded standalone Milvus 2.3.5 (the dev extra `milvus`) on a free port in a
temp dir, builds one collection per index type through `MilvusIndex.build_version` (which
waits until the server has indexed every row), and times single-query top-k searches over
loopback gRPC: p50/p99 and recall@k against the exact scan of the same vectors. The
mirror is `newsrec.index.memory.Snapshot`, what the retrieval service searches by default.
Vectors and queries as in bench/retrieval.py (clustered unit vectors, user-like queries).
Writes bench/out/retrieval_server.json.
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

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT / "tests/integration/milvus_server"))

from milvus_proc import MilvusServerProc  # noqa: E402
from retrieval import clustered, recall, timed, user_queries  # noqa: E402

from newsrec.index import NewsRecord  # noqa: E402
from newsrec.index.memory import Snapshot, exact_search  # noqa: E402
from newsrec.index.milvus import IndexSpec, MilvusIndex  # noqa: E402


def _spec(t: str, n: int) -> IndexSpec:
    nlist = max(16, int(4 * np.sqrt(n)))
    return IndexSpec(t, nlist=nlist, nprobe=max(16, nlist // 8), ef=256)


def run(n: int, dim: int, k: int, reps: int, types: list[str], uri: str) -> list[dict[str, Any]]:
    rng = np.random.default_rng(n)
    base = clustered(n, dim, rng)
    ids = [f"N{i}" for i in range(n)]
    q = user_queries(base, reps + 1, rng)
    truth, _ = exact_search(base, q, k)
    rows: list[dict[str, Any]] = []

    def row(name: str, lat: tuple[float, float], rec: float, **kw: Any) -> None:
        r = {
            "n": n,
            "dim": dim,
            "k": k,
            "type": name,
            "p50_ms": lat[0],
            "p99_ms": lat[1],
            "recall": rec,
            **kw,
        }
        rows.append(r)
        print(json.dumps(r), flush=True)

    row("exact-numpy", timed(lambda i: exact_search(base, q[i : i + 1], k), reps), 1.0)
    recs = [NewsRecord(ids[i], base[i], f"c{i % 20}", "s", i, "v1") for i in range(n)]
    snap = Snapshot.from_records("bench", recs)
    found = [[h.news_id for h in snap.search(q[i : i + 1], k, None)[0]] for i in range(reps)]
    row(
        "memory-mirror",
        timed(lambda i: snap.search(q[i : i + 1], k, None), reps),
        recall(found, truth[:reps], ids),
    )
    for t in types:
        idx = MilvusIndex.from_uri(uri, spec=_spec(t, n), batch_size=5000, timeout_s=30.0)
        start = time.perf_counter()
        idx.build_version(f"news_bench_{t.lower()}", "v1", recs)
        build_s = time.perf_counter() - start
        alias = f"news_bench_{t.lower()}"
        found = [[h.news_id for h in idx.search(alias, q[i : i + 1], k)[0]] for i in range(reps)]
        lat = timed(lambda i, idx=idx, alias=alias: idx.search(alias, q[i : i + 1], k), reps)
        row(f"milvus-server-{t}", lat, recall(found, truth[:reps], ids), build_s=round(build_s, 1))
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=100_000)
    p.add_argument("--dim", type=int, default=64)
    p.add_argument("--k", type=int, default=200)
    p.add_argument("--reps", type=int, default=300)
    p.add_argument("--types", default="FLAT,IVF_FLAT,HNSW")
    p.add_argument("--uri", default="", help="an existing server (default: start the embedded one)")
    args = p.parse_args()
    types = [t.strip() for t in args.types.split(",") if t.strip()]
    with tempfile.TemporaryDirectory(prefix="bench-milvus-") as tmp:
        server = None if args.uri else MilvusServerProc(Path(tmp))
        if server is not None:
            print(f"milvus server up in {server.start():.1f} s at {server.uri}", flush=True)
        try:
            rows = run(args.n, args.dim, args.k, args.reps, types, args.uri or server.uri)  # type: ignore[union-attr]
        finally:
            if server is not None:
                server.stop()
    out = ROOT / "bench/out/retrieval_server.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"date": time.strftime("%Y-%m-%d"), "rows": rows}, indent=2))
    print(f"{'type':22s} {'p50 ms':>8s} {'p99 ms':>8s} {'recall@k':>9s}")
    for r in rows:
        print(f"{r['type']:22s} {r['p50_ms']:8.2f} {r['p99_ms']:8.2f} {r['recall']:9.3f}")


if __name__ == "__main__":
    main()
