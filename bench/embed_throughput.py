"""Throughput of `newsrec embed --provider local` against a plain SentenceTransformer loop.

Both run in the same process on the same texts with the same batch size:
  baseline   : `model.encode(chunk)` over consecutive chunks in file order (no sorting)
  precompute : `newsrec.embed.precompute(...)` with the cache off (reads the file, counts
               tokens, sorts by length, batches, embeds, writes the table)
The two alternate, `--repeats` times each; medians and their ratio are printed and saved
(JSON under bench/out/, PNG under docs/img/). With `--quality` the nearest-neighbour
category agreement of the precomputed table is reported too.

    .venv/bin/python bench/embed_throughput.py --n 1500 --repeats 3 --quality
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
ROOT = Path(__file__).resolve().parents[1]


def _sample_news(news_path: Path, n: int, seed: int, dest: Path) -> Path:
    lines = [ln for ln in news_path.read_text(encoding="utf-8").splitlines() if ln.strip()]
    random.Random(seed).shuffle(lines)
    dest.write_text("\n".join(lines[:n]) + "\n", encoding="utf-8")
    return dest


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--news", type=Path, help="news.tsv to sample from (default: generate synthetic 'small')")
    ap.add_argument("--n", type=int, default=1500, help="texts per run")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch default)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--quality", action="store_true", help="also report neighbour category agreement")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "out" / "embed_throughput.json")
    ap.add_argument("--plot", type=Path, default=ROOT / "docs" / "img" / "embed_throughput.png")
    args = ap.parse_args()

    import torch

    from newsrec.data import read_news
    from newsrec.embed.config import PrecomputeConfig, ProviderConfig
    from newsrec.embed.local import LocalProvider
    from newsrec.embed.precompute import precompute
    from newsrec.embed.quality import neighbour_category_agreement
    from newsrec.embed.store import load_embeddings

    if args.threads:
        torch.set_num_threads(args.threads)
    work = Path(tempfile.mkdtemp(prefix="embed-bench-"))
    news_src = args.news
    if news_src is None:
        from newsrec.data.synth import generate

        print("generating synthetic 'small' data ...", file=sys.stderr)
        generate("small", args.seed, work / "synth")
        news_src = work / "synth" / "train" / "news.tsv"
    news = _sample_news(news_src, args.n, args.seed, work / "news.tsv")
    articles, _ = read_news(news)
    texts = [a.text() for a in articles]

    provider = LocalProvider.from_config(ProviderConfig())
    model = provider.sentence_transformer
    model.encode(texts[:32], batch_size=32)  # warm-up: first call pays one-off costs
    config = PrecomputeConfig(batch_size=args.batch_size, use_cache=False, progress=False)

    base_t: list[float] = []
    pre_t: list[float] = []
    for rep in range(args.repeats):
        t0 = time.perf_counter()
        for i in range(0, len(texts), args.batch_size):
            model.encode(
                texts[i : i + args.batch_size], batch_size=args.batch_size, normalize_embeddings=True
            )
        base_t.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        report = precompute([news], config, work / f"emb{rep}", provider=provider)
        pre_t.append(time.perf_counter() - t0)
        assert report.ok and report.count == len(texts)
        print(f"repeat {rep}: baseline {base_t[-1]:.1f}s  precompute {pre_t[-1]:.1f}s", file=sys.stderr)

    n = len(texts)
    base_rate = n / statistics.median(base_t)
    pre_rate = n / statistics.median(pre_t)
    result: dict[str, object] = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "texts": n,
        "batch_size": args.batch_size,
        "repeats": args.repeats,
        "torch_threads": torch.get_num_threads(),
        "baseline_seconds": [round(t, 3) for t in base_t],
        "precompute_seconds": [round(t, 3) for t in pre_t],
        "baseline_texts_per_s": round(base_rate, 1),
        "precompute_texts_per_s": round(pre_rate, 1),
        "ratio": round(pre_rate / base_rate, 3),
        "truncated": report.truncated,
    }
    if args.quality:
        agreement, chance = neighbour_category_agreement(load_embeddings(work / "emb0"), articles, k=10)
        result.update(
            neighbour_agreement_k10=round(agreement, 4),
            chance=round(chance, 4),
            lift=round(agreement / chance, 2),
        )
    print(json.dumps(result, indent=2))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.2))
    ax.bar(
        ["encode loop\n(unsorted)", "newsrec embed\n(precompute)"],
        [base_rate, pre_rate],
        color=["#999", "#2a7"],
    )
    ax.set_ylabel("texts / s (median)")
    ax.set_title(f"all-MiniLM-L6-v2, {n} texts, batch {args.batch_size}: x{pre_rate / base_rate:.2f}")
    fig.tight_layout()
    args.plot.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.plot, dpi=110)
    print(f"wrote {args.out} and {args.plot}", file=sys.stderr)


if __name__ == "__main__":
    main()
