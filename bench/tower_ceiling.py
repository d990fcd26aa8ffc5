"""How far are the towers from simple scores that use the same information?

On synthetic data (which ships `synth_truth.json`), scores the same sampled dev
impressions, restricted to users with a history, by:

- `history topic share`: share of the user's history in the candidate's topic (truth);
- `history topic + 2 x storyline share`: the same plus the candidate's storyline (truth);
- `tower`: the trained user vector . news vector (what serving ranks by);
- `mean similarity`: mean over history items of news-vector similarity (= mean pooling);
- `mean + max similarity`: a multi-interest score no single user vector can express.

    .venv/bin/python bench/tower_ceiling.py --data DATA --serving RUN/serving --impressions 4000
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from newsrec.data import load_split  # noqa: E402
from newsrec.eval.evaluate import scorers  # noqa: E402
from newsrec.eval.metrics import auc  # noqa: E402
from newsrec.models.artifact import load_serving  # noqa: E402
from newsrec.train.prepare import labeled  # noqa: E402
from newsrec.train.ranker import encode_impressions  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--serving", type=Path, action="append", required=True)
    ap.add_argument("--impressions", type=int, default=4000)
    ap.add_argument("--seed", type=int, default=5)
    args = ap.parse_args()
    truth = json.loads((args.data / "synth_truth.json").read_text())["news"]  # id -> [topic, storyline]
    dev = load_split(args.data / "dev", "dev")
    imps = [i for i in labeled(dev.impressions) if i.history and len(set(i.labels)) == 2]
    rng = np.random.default_rng(args.seed)
    imps = [imps[i] for i in np.sort(rng.choice(len(imps), min(args.impressions, len(imps)), replace=False))]
    scores: dict[str, list[float]] = {"history topic share": [], "history topic + 2 x storyline share": []}
    for imp in imps:
        hist = [truth[h] for h in imp.history if h in truth]
        topics, stories = Counter(t for t, _ in hist), Counter(s for _, s in hist if s >= 0)
        n = max(len(hist), 1)
        cand = [truth.get(c, [-1, -1]) for c in imp.candidates]
        top = np.array([topics[t] / n for t, _ in cand])
        story = np.array([stories[s] / n if s >= 0 else 0.0 for _, s in cand])
        scores["history topic share"].append(auc(np.array(imp.labels), top))
        scores["history topic + 2 x storyline share"].append(auc(np.array(imp.labels), top + 2 * story))
    print(f"{len(imps)} dev impressions with a history and both labels")
    for name, vals in scores.items():
        print(f"  {name:40s} AUC {np.mean(vals):.4f}")
    for serving in args.serving:
        model = load_serving(serving)
        vecs = model.table.vectors
        tower = scorers(model)["two_tower"]
        per: dict[str, list[float]] = {"tower": [], "mean similarity": [], "mean + max similarity": []}
        for e in encode_impressions(model, imps):
            if len(e.hist) == 0:
                continue
            valid = e.cands >= 0
            cand = vecs[np.where(valid, e.cands, 0)] * valid[:, None]
            sims = cand @ vecs[e.hist].T
            per["tower"].append(auc(e.labels, tower(e)))
            per["mean similarity"].append(auc(e.labels, sims.mean(1)))
            per["mean + max similarity"].append(auc(e.labels, sims.mean(1) + sims.max(1)))
        print(serving)
        for name, vals in per.items():
            print(f"  {name:40s} AUC {np.mean(vals):.4f}")


if __name__ == "__main__":
    main()
