"""Paired differences between ablation runs: are the gaps in the table larger than noise?

Scores the same sampled dev impressions (the sample `newsrec evaluate` draws for the same
seed and size) with every run's serving artifact in an `ablation` output directory, and
prints, for each comparison, the mean per-impression AUC difference with its standard
error (SD of the differences / sqrt(n)) and z = mean / SE.

    .venv/bin/python bench/ablation_paired.py --ablation OUT --data DATA --impressions 20000

`--ablation` may be given more than once (variants run in several processes); each
`OUT/runs/<name>/serving` found is used. `ranker` is the ranker of the run named in
ablation.json's ranker row. The differences come from `newsrec.eval.paired.paired_diff`,
the same code that gives `newsrec evaluate`/`ablation` their comparison against the best
baseline (those now report it themselves, from the per-impression metrics each
evaluation saves; this script remains for re-scoring saved runs on another sample).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from newsrec.data import load_split  # noqa: E402
from newsrec.eval.evaluate import sample_impressions, scorers  # noqa: E402
from newsrec.eval.metrics import auc  # noqa: E402
from newsrec.eval.paired import paired_diff  # noqa: E402
from newsrec.models.artifact import load_serving  # noqa: E402
from newsrec.train.prepare import labeled  # noqa: E402
from newsrec.train.ranker import encode_impressions  # noqa: E402

PAIRS = (
    ("id+llm", "id"),
    ("id+gnn", "id"),
    ("id+llm+gnn", "id+llm"),
    ("id+llm+gnn", "id+gnn"),
    ("id+llm+gnn", "id"),
    ("fusion-attention", "id+llm+gnn"),
    ("fusion-gate", "id+llm+gnn"),
    ("fusion-concat", "id+llm+gnn"),
    ("ranker", "id+llm+gnn"),
    ("ranker", "popularity"),
)


def per_impression_auc(serving: Path, imps: list, scorer: str) -> np.ndarray:
    """AUC of each impression under `scorer` (a name of newsrec.eval.evaluate.scorers);
    NaN where an impression has only one class."""
    model = load_serving(serving)
    score = scorers(model)[scorer]
    out = np.full(len(imps), np.nan)
    for i, e in enumerate(encode_impressions(model, imps)):
        if e.labels.min() != e.labels.max():
            out[i] = auc(e.labels, score(e))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ablation", type=Path, action="append", required=True)
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--impressions", type=int, default=20000, help="as --eval-impressions of the ablation")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=ROOT / "bench/out/ablation_paired.json")
    args = ap.parse_args()
    dev = load_split(args.data / "dev", "dev")
    imps = sample_impressions(labeled(dev.impressions), args.impressions, args.seed)  # as `evaluate` draws
    servings: dict[str, tuple[Path, str]] = {}
    for abl in args.ablation:
        for run in sorted((abl / "runs").glob("*/serving")):
            servings[run.parent.name] = (run, "two_tower")
        table = abl / "ablation.json"
        if table.is_file():
            for row in json.loads(table.read_text())["runs"]:
                if row["name"] == "ranker":
                    base = abl / "runs" / row["base"] / "serving"
                    servings["ranker"] = (base, "ranker")
                    servings["popularity"] = (base, "popularity")
    scores: dict[str, np.ndarray] = {}
    for name, (path, scorer) in servings.items():
        t0 = time.perf_counter()
        scores[name] = per_impression_auc(path, imps, scorer)
        print(
            f"{name:14s} AUC {np.nanmean(scores[name]):.4f}  ({time.perf_counter() - t0:.0f} s)", flush=True
        )
    rows = []
    print(f"\n{'comparison':30s} {'n':>6s} {'diff':>8s} {'SE':>7s} {'z':>6s}")
    for a, b in PAIRS:
        if a not in scores or b not in scores:
            continue
        d = paired_diff(scores[a], scores[b])
        if d["diff"] is None or d["se"] is None:
            continue
        mean, se, z = d["diff"], d["se"], d["z"]
        rows.append(
            {"a": a, "b": b, "n": d["n"], "diff": round(mean, 4), "se": round(se, 4), "z": round(z, 1)}
        )  # noqa: E501
        print(f"{a + ' - ' + b:30s} {d['n']:6d} {mean:+8.4f} {se:7.4f} {z:6.1f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {
                "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                "impressions": len(imps),
                "auc": {k: round(float(np.nanmean(v)), 4) for k, v in scores.items()},
                "pairs": rows,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
