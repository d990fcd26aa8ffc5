"""Cost of sealing and verifying a serving artifact (sha256 of every file at load).

Builds a serving-sized directory (news vectors N x dim float32, modality weights, ids,
metadata) in a temp dir, seals it, and times `verify` (what `load_serving` adds at each
start) and the staged write + swap of the directory, median of --repeat runs.

    .venv/bin/python bench/artifact_verify.py --news 50000 --dim 256
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from newsrec.atomic import StagedDir, seal, verify  # noqa: E402


def _write(d: Path, n: int, dim: int) -> None:
    rng = np.random.default_rng(0)
    np.save(d / "news_vectors.npy", rng.normal(size=(n, dim)).astype(np.float32), allow_pickle=False)
    np.save(d / "modality_weights.npy", rng.random((n, 3), dtype=np.float32), allow_pickle=False)
    np.save(d / "popularity.npy", rng.random(n, dtype=np.float32), allow_pickle=False)
    (d / "news_ids.json").write_text(json.dumps([f"N{i}" for i in range(n)]))
    (d / "news_meta.json").write_text(json.dumps({"title": ["a title of some words"] * n}))
    (d / "config.json").write_text("{}")


def _median(fn: object, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()  # type: ignore[operator]
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--news", type=int, default=50_000)
    ap.add_argument("--dim", type=int, default=256)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        target = Path(tmp) / "serving"
        target.mkdir()
        _write(target, args.news, args.dim)
        size = sum(p.stat().st_size for p in target.iterdir())
        t_seal = _median(lambda: seal(target, "serving", 2), args.repeat)
        t_verify = _median(lambda: verify(target, "serving"), args.repeat)

        def staged() -> None:
            with StagedDir(target) as stage:
                _write(stage.path, args.news, args.dim)
                seal(stage.path, "serving", 2)
                stage.commit()

        t_staged = _median(staged, args.repeat)
    print(f"artifact: {args.news} news x {args.dim} dims, {size / 1e6:.1f} MB in 6 files")
    print(f"seal (hash + manifest):          {t_seal * 1e3:8.1f} ms")
    print(f"verify (what load_serving adds): {t_verify * 1e3:8.1f} ms  ({size / 1e6 / t_verify:.0f} MB/s)")
    print(f"staged write + seal + swap:      {t_staged * 1e3:8.1f} ms")


if __name__ == "__main__":
    main()
