"""Cost of building the k=200 `SearchHit`s in `Snapshot.search` (50k x 64 vectors): the old
per-hit numpy-scalar indexing vs the shipped `.tolist()` rows, timed interleaved in the same
run (the machine is shared, so only same-run medians and their ratio mean anything), plus
the whole `Snapshot.search` for context; and what the retrieval service answers, columns,
taken apart from `SearchHit`s (before) vs gathered by `Snapshot.search_columns` (now),
each including the scan and the top-k.

Run: .venv/bin/python bench/snapshot_hits.py
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from newsrec.index.base import HitColumns, NewsRecord, SearchHit
from newsrec.index.memory import Snapshot


def hits_old(snap: Snapshot, row: np.ndarray, order: np.ndarray) -> list[SearchHit]:
    """The previous construction: numpy scalar indexing per hit."""
    return [
        SearchHit(
            news_id=snap.ids[j],
            score=float(row[j]),
            category=snap.category_names[snap.categories[j]],
            subcategory=snap.subcategories[j],
            published_at=int(snap.published_at[j]),
            model_version=snap.model_versions[j],
        )
        for j in order
        if row[j] != -np.inf
    ]


def hits_new(snap: Snapshot, row: np.ndarray, order: np.ndarray) -> list[SearchHit]:
    """Same construction as `Snapshot.search` now does (from `.tolist()` rows)."""
    vals = row[order]
    keep = vals != -np.inf
    order = order[keep]
    cats, pubs = snap.categories[order].tolist(), snap.published_at[order].tolist()
    rows = zip(order.tolist(), vals[keep].tolist(), cats, pubs, strict=True)
    return [
        SearchHit(snap.ids[j], s, snap.category_names[c], snap.subcategories[j], p, snap.model_versions[j])
        for j, s, c, p in rows
    ]


def _ms(fn: Callable[[], object], repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t0) * 1e3)
    return out


def main(n: int = 50_000, dim: int = 64, k: int = 200, rounds: int = 30) -> dict[str, float]:
    rng = np.random.default_rng(0)
    v = rng.normal(size=(n, dim)).astype(np.float32)
    recs = [NewsRecord(f"N{i}", v[i], "abc"[i % 3], "s", i, "v1") for i in range(n)]
    snap = Snapshot.from_records("c", recs)
    q = rng.normal(size=(1, dim)).astype(np.float32)
    row = (q @ snap.vectors.T)[0]
    cand = np.argpartition(-row, k - 1)[:k]
    order = cand[np.argsort(-row[cand], kind="stable")]
    assert hits_old(snap, row, order) == hits_new(snap, row, order) == snap.search(q, k, None)[0]
    old: list[float] = []
    new: list[float] = []
    full: list[float] = []
    via_hits: list[float] = []
    columns: list[float] = []
    assert snap.search_columns(q[0], k, None) == HitColumns.from_hits(snap.search(q, k, None)[0])
    for _ in range(rounds):  # interleaved so drifting load hits both alike
        old += _ms(lambda: hits_old(snap, row, order), 5)
        new += _ms(lambda: hits_new(snap, row, order), 5)
        full += _ms(lambda: snap.search(q, k, None), 1)
        # what Retrieve answers: columns taken apart from hits (before) vs gathered directly
        via_hits += _ms(lambda: HitColumns.from_hits(snap.search(q, k, None)[0]), 1)
        columns += _ms(lambda: snap.search_columns(q[0], k, None), 1)
    res = {
        "n": n,
        "dim": dim,
        "k": k,
        "build_hits_old_ms": float(np.median(old)),
        "build_hits_new_ms": float(np.median(new)),
        "search_total_ms": float(np.median(full)),
        "retrieve_columns_via_hits_ms": float(np.median(via_hits)),
        "retrieve_columns_gathered_ms": float(np.median(columns)),
    }
    res["ratio_old_over_new"] = res["build_hits_old_ms"] / res["build_hits_new_ms"]
    out = Path(__file__).parent / "out"
    out.mkdir(exist_ok=True)
    (out / "snapshot_hits.json").write_text(json.dumps(res, indent=2))
    print(json.dumps(res, indent=2))
    return res


if __name__ == "__main__":
    main()
