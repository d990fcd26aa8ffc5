"""Topic separation of a full embedding table: k-NN category agreement vs chance.

Reads an embedding directory written by `newsrec embed` and the news files it was made
from, and prints how often an article's nearest neighbours (cosine, over the whole
table) share its MIND category, against the share random neighbours would give.

    .venv/bin/python bench/embed_quality.py --embeddings EMB --news DATA/train/news.tsv \
        --news DATA/dev/news.tsv --queries 10000

Also prints the run figures from EMB/metadata.json (texts, duration, texts/s, cache hits).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from newsrec.data import read_news  # noqa: E402
from newsrec.embed.quality import neighbour_category_agreement  # noqa: E402
from newsrec.embed.store import load_embeddings  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--embeddings", type=Path, required=True)
    ap.add_argument("--news", type=Path, action="append", required=True)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--queries", type=int, default=10000, help="random query articles (0: all)")
    ap.add_argument("--out", type=Path, default=ROOT / "bench/out/embed_quality.json")
    args = ap.parse_args()
    articles = {}
    for path in args.news:
        news, _bad = read_news(path)
        articles.update({a.news_id: a for a in news})
    table = load_embeddings(args.embeddings)
    t0 = time.perf_counter()
    agreement, chance = neighbour_category_agreement(table, articles, k=args.k, queries=args.queries or None)
    meta = json.loads((args.embeddings / "metadata.json").read_text())
    texts = int(meta["embedded_texts"]) + int(meta["cache_hits"])
    report = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "table_rows": int(table.vectors.shape[0]),
        "k": args.k,
        "queries": args.queries or len(articles),
        "agreement": round(agreement, 4),
        "chance": round(chance, 4),
        "ratio": round(agreement / chance, 1),
        "seconds": round(time.perf_counter() - t0, 1),
        "run": {
            "unique_texts": texts,
            "embedded_texts": meta["embedded_texts"],
            "cache_hits": meta["cache_hits"],
            "duration_s": meta["duration_s"],
            "texts_per_s": round(int(meta["embedded_texts"]) / max(float(meta["duration_s"]), 1e-9), 1),
            "tokens_sent": meta["tokens_sent"],
        },
    }
    print(
        f"{args.k}-NN category agreement over {report['table_rows']:,} articles "
        f"({report['queries']:,} queries): {agreement:.3f} vs {chance:.3f} chance ({report['ratio']}x)"
    )
    r = report["run"]
    print(
        f"run: {r['unique_texts']:,} texts, {r['embedded_texts']:,} embedded, "
        f"{r['cache_hits']:,} from cache, {r['duration_s']} s, {r['texts_per_s']} texts/s embedded"
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
