"""Peak memory and time of synthetic-data generation stages, to size `large` without
generating it in full (which takes far longer than this shared machine allows).

    .venv/bin/python bench/synth_large_probe.py --size large [--days 1]
    .venv/bin/python bench/synth_large_probe.py --size medium --full

Stages, as `newsrec.data.synth.generate` runs them: the world (articles, users), the
archive histories, then `--days` simulated days (the first warm-up days: not logged,
the same per-hour work as a logged day of warm-up size). Prints seconds and peak RSS
(ru_maxrss) after each stage, and an extrapolation of the simulation to all days by
impressions. `--full` runs `generate` itself instead. Writes
bench/out/synth_probe_<size>.json.
"""

from __future__ import annotations

import argparse
import json
import resource
import tempfile
import time
from pathlib import Path

import numpy as np

from newsrec.data import synth
from newsrec.data import synth_vocab as V
from newsrec.data.synth_text import build_catalogue
from newsrec.progress import progress_bar


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def probe(size: str, days: int, seed: int) -> dict[str, object]:
    cfg = synth.SIZES[size]
    out: dict[str, object] = {"size": size, "stages": []}
    stages: list[dict[str, float | str]] = []

    def mark(name: str, t0: float) -> None:
        stages.append(
            {"stage": name, "seconds": round(time.perf_counter() - t0, 1), "peak_rss_mb": round(peak_mb())}
        )
        print(stages[-1], flush=True)

    t = time.perf_counter()
    rng = np.random.default_rng(seed)
    cat = build_catalogue(rng, cfg.clusters_per_topic, cfg.members_per_cluster)
    w = synth._world(rng, cfg, cat)
    mark("world", t)
    t = time.perf_counter()
    archive = np.flatnonzero(w.pub < -cfg.warmup_days * 24)
    lognormal = rng.lognormal(np.log(cfg.archive_history_mean) - 0.25, 0.7, size=w.start.size)
    n_hist = np.where(w.start == -cfg.warmup_days, np.clip(np.round(lognormal), 1, 60), 0).astype(np.int64)
    clicks = synth._archive_history(rng, n_hist, archive, w, len(V.TOPICS))
    mark("archive histories", t)
    with tempfile.TemporaryDirectory() as tmp:
        logs = {name: synth._SplitLog(Path(tmp) / name, w.nid) for name in ("train", "dev")}
        bar = progress_bar(total=days * 24, desc=f"probe {size}", unit="h")
        t = time.perf_counter()
        for day in range(-cfg.warmup_days, -cfg.warmup_days + days):
            synth._simulate_day(rng, cfg, w, day, clicks, logs, bar)
        bar.close()
        for log in logs.values():
            log.close()
        mark(f"{days} warm-up day(s), {days * cfg.warmup_impressions_per_day} impressions", t)
    sim = float(stages[-1]["seconds"])
    total = cfg.warmup_days * cfg.warmup_impressions_per_day + cfg.train_impressions + cfg.dev_impressions
    per_imp = sim / (days * cfg.warmup_impressions_per_day)
    out["stages"] = stages
    out["simulation_seconds_extrapolated"] = round(per_imp * total)
    print(
        f"simulation of all {total:,} impressions at this rate: ~{per_imp * total / 60:.0f} min", flush=True
    )
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", default="large")
    ap.add_argument("--days", type=int, default=1)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--full", action="store_true", help="run generate() in full")
    args = ap.parse_args()
    if args.full:
        with tempfile.TemporaryDirectory() as tmp:
            t = time.perf_counter()
            summary = synth.generate(args.size, args.seed, tmp, progress=True)
            got: dict[str, object] = {
                "size": args.size,
                "seconds": round(time.perf_counter() - t, 1),
                "peak_rss_mb": round(peak_mb()),
                "summary": summary.to_dict(),
            }
        print(got)
    else:
        got = probe(args.size, args.days, args.seed)
    path = Path(__file__).parent / "out" / f"synth_probe_{args.size}.json"
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps(got, indent=2))


if __name__ == "__main__":
    main()
