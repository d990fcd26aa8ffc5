"""A tiny, learnable MIND-format dataset + text embeddings for tests and smoke runs.

Users prefer one topic; an article's topic shows (noisily) in its text vector,
its category and (cleanly) in its entities; dev adds articles never seen in
train (cold start). Not a stand-in for `newsrec data synth`: seconds to build,
a few hundred rows.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np

from newsrec.data.reader import format_time
from newsrec.embed.store import EmbeddingTable, save_embeddings


def write_toy_dataset(
    out: Path,
    seed: int = 0,
    topics: int = 5,
    news_per_topic: int = 40,
    users: int = 60,
    train_impressions: int = 500,
    dev_impressions: int = 150,
    text_dim: int = 16,
) -> tuple[Path, Path]:
    """Write OUT/data/{train,dev}/ and OUT/emb/; returns (data_dir, embeddings_dir)."""
    rng = np.random.default_rng(seed)
    data, emb = out / "data", out / "emb"
    ents_per_topic = 8
    centroids = rng.normal(size=(topics, text_dim))
    ent_vecs = rng.normal(size=(topics * ents_per_topic, 6))
    news: list[tuple[str, int, bool]] = []  # id, topic, cold
    for t in range(topics):
        for j in range(news_per_topic):
            news.append((f"N{t}_{j}", t, j >= int(news_per_topic * 0.75)))
    text_ids, text_vecs, rows = [], [], []
    for nid, t, _cold in news:
        cat = f"cat{t}" if rng.random() < 0.6 else f"cat{rng.integers(topics)}"
        ents = rng.choice(ents_per_topic, size=2, replace=False) + t * ents_per_topic
        ent_json = json.dumps(
            [{"Label": f"E{e}", "Type": "C", "WikidataId": f"Q{e}", "Confidence": 1.0} for e in ents]
        )
        rows.append("\t".join([nid, cat, f"sub{t}", f"title {nid}", f"abstract {nid}", "", ent_json, "[]"]))
        text_ids.append(nid)
        text_vecs.append(0.6 * centroids[t] + rng.normal(size=text_dim))
    pref = rng.integers(topics, size=users)
    base = datetime(2019, 11, 10, 9, 0, 0)
    warm = [n for n in news if not n[2]]

    def behaviors(count: int, pool: list[tuple[str, int, bool]], start: int, day: int) -> list[str]:
        lines = []
        for i in range(count):
            u = int(rng.integers(users))
            liked = [n[0] for n in warm if n[1] == pref[u]]
            hist = list(rng.choice(liked, size=int(rng.integers(0, 6)), replace=False)) if i % 10 else []
            cands = [pool[k] for k in rng.choice(len(pool), size=8, replace=False)]
            labels = [int(rng.random() < (0.7 if c[1] == pref[u] else 0.05)) for c in cands]
            if not any(labels):
                labels[int(rng.integers(len(labels)))] = 1
            imp = " ".join(f"{c[0]}-{y}" for c, y in zip(cands, labels, strict=True))
            when = format_time(base + timedelta(days=day, minutes=i))
            lines.append(f"{start + i}\tU{u}\t{when}\t{' '.join(hist)}\t{imp}")
        return lines

    for split, lines in (
        ("train", behaviors(train_impressions, warm, 1, 0)),
        ("dev", behaviors(dev_impressions, news, 100000, 1)),
    ):
        d = data / split
        d.mkdir(parents=True, exist_ok=True)
        (d / "news.tsv").write_text("\n".join(rows) + "\n")
        (d / "behaviors.tsv").write_text("\n".join(lines) + "\n")
        # Every third entity is missing from the .vec, as in real MIND.
        vec_lines = [
            f"Q{e}\t" + "\t".join(f"{v:.4f}" for v in ent_vecs[e]) for e in range(len(ent_vecs)) if e % 3
        ]
        (d / "entity_embedding.vec").write_text("\n".join(vec_lines) + "\n")
    save_embeddings(emb, EmbeddingTable(text_ids, np.array(text_vecs, dtype=np.float32), {"model": "toy"}))
    return data, emb
