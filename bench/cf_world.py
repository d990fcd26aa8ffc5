"""A made-up MIND-format world where popularity, freshness and co-clicks decide (as in real
news logs) and text barely does: the check that the baselines and the ranker behave on
real-log-like structure. Never real data; seconds to write.

Articles belong to hidden taste clusters that neither their category, entities nor text
reveal (the text vector carries a weak trace); each has a heavy-tailed appeal and is
clicked mostly within a day or two of publication. Users have one cluster; a click is
drawn by softmax over the impression of appeal + taste match - age.

    .venv/bin/python bench/cf_world.py --out /tmp/cfw
    newsrec train --data /tmp/cfw/data --embeddings /tmp/cfw/emb --out RUN --epochs 2 --output-dim 64
    newsrec evaluate --run RUN --data /tmp/cfw/data --out EVAL
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from newsrec.data.reader import format_time  # noqa: E402
from newsrec.embed.store import EmbeddingTable, save_embeddings  # noqa: E402


def write_world(
    out: Path, seed: int = 0, items: int = 1500, users: int = 2500, train: int = 9000, dev: int = 2000
):
    rng = np.random.default_rng(seed)
    clusters, dim = 16, 32
    cl = rng.integers(clusters, size=items)
    appeal = rng.pareto(1.5, size=items).clip(max=30)  # heavy head
    base = datetime(2019, 11, 9, 0, 0, 0)
    pub = np.sort(rng.uniform(-3 * 24, 7 * 24, size=items))  # hours after base
    ucl = rng.integers(clusters, size=users)
    cent = rng.normal(size=(clusters, dim))
    text = 0.25 * cent[cl] + rng.normal(size=(items, dim))
    rows = []
    for i in range(items):
        ent = json.dumps([{"Label": f"E{j}", "Type": "C", "WikidataId": f"Q{j}", "Confidence": 1.0}
                          for j in rng.choice(200, 2, replace=False)])  # fmt: skip
        rows.append("\t".join([f"N{i}", f"cat{rng.integers(8)}", "sub", f"t{i}", f"a{i}", "", ent, "[]"]))

    def pick(u: int, hour: float, k: int) -> np.ndarray:
        live = np.flatnonzero((pub <= hour) & (pub > hour - 48))
        shown = rng.choice(live, size=min(k, len(live)), replace=False)
        age = hour - pub[shown]
        logit = np.log1p(appeal[shown]) + 2.0 * (cl[shown] == ucl[u]) - age / 12.0
        return shown, logit

    hist = {}
    for u in range(users):
        h = []
        for _ in range(int(rng.integers(3, 25))):
            shown, logit = pick(u, float(rng.uniform(-1 * 24, 0)), 20)
            p = np.exp(logit - logit.max())
            h.append(int(shown[rng.choice(len(shown), p=p / p.sum())]))
        hist[u] = list(dict.fromkeys(h))

    def behaviors(n: int, t0: float, t1: float, start: int) -> list[str]:
        lines = []
        for k, hour in enumerate(np.sort(rng.uniform(t0, t1, n))):
            u = int(rng.integers(users))
            shown, logit = pick(u, float(hour), 20)
            p = np.exp(logit - logit.max())
            p /= p.sum()
            clicks = set(
                rng.choice(len(shown), size=1 + int(rng.random() < 0.4), replace=False, p=p).tolist()
            )
            imp = " ".join(f"N{s}-{int(j in clicks)}" for j, s in enumerate(shown))
            h = " ".join(f"N{x}" for x in hist[u])
            lines.append(f"{start + k}\tU{u}\t{format_time(base + timedelta(hours=float(hour)))}\t{h}\t{imp}")
        return lines

    for split, lines in (
        ("train", behaviors(train, 0, 6 * 24, 1)),
        ("dev", behaviors(dev, 6 * 24, 7 * 24, 10**6)),
    ):
        d = out / "data" / split
        d.mkdir(parents=True, exist_ok=True)
        (d / "news.tsv").write_text("\n".join(rows) + "\n")
        (d / "behaviors.tsv").write_text("\n".join(lines) + "\n")
    ids = [f"N{i}" for i in range(items)]
    save_embeddings(out / "emb", EmbeddingTable(ids, text.astype(np.float32), {"model": "cf_world"}))
    return out / "data", out / "emb"


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    print(write_world(a.out, a.seed))
