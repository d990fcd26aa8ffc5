"""Copies of a MIND-format dataset / embedding table where one modality is pure noise.

The fusion must not lose to its own ID-only (or ID+text) variant when a modality
carries nothing; these copies make such a world from a real one:

    --kg-noise     shuffle the (title_entities, abstract_entities) columns of news.tsv
                   across articles (one permutation over the union of all splits, so an
                   article keeps the same wrong entities in train and dev); the entity
                   vectors stay, the article->entity links are noise
    --text-noise   replace every text embedding by a random unit vector
    --text-hash    build the text table instead of copying it: hashed bag of words of
                   title + abstract, randomly projected to 384-d (a cheap stand-in for
                   the LLM table when `newsrec embed` has not run yet; --embeddings is
                   then only the output location's template and may not exist)

    .venv/bin/python bench/noisy_modality.py --data D --embeddings E --out-data D2 --out-emb E2 \
        --kg-noise [--text-noise]

Without a noise flag, the corresponding output is a symlink to its source, so the
variant differs from its source in exactly the named modality.

    --subsample TRAIN_STRIDE,DEV_STRIDE   (instead of a variant) write a smaller copy:
                   every k-th impression of each split (the time spread is kept) and
                   only the news they show, for quick runs on a loaded machine
"""

from __future__ import annotations

import argparse
import json
import shutil
import zlib
from pathlib import Path

import numpy as np


def _news_rows(path: Path) -> list[list[str]]:
    return [line.rstrip("\n").split("\t") for line in path.read_text(encoding="utf-8").splitlines() if line]


def shuffle_entities(data: Path, out: Path, seed: int) -> int:
    """Write `out` = `data` with entity columns permuted across news ids; returns #articles."""
    splits = sorted(p.parent for p in data.glob("*/news.tsv"))
    ents: dict[str, tuple[str, str]] = {}
    for sp in splits:
        for row in _news_rows(sp / "news.tsv"):
            ents.setdefault(row[0], (row[6], row[7]) if len(row) > 7 else ("[]", "[]"))
    ids = sorted(ents)
    perm = np.random.default_rng(seed).permutation(len(ids))
    moved = {ids[i]: ents[ids[j]] for i, j in enumerate(perm)}
    if out.exists():
        shutil.rmtree(out)
    shutil.copytree(data, out)
    for sp in splits:
        rows = _news_rows(sp / "news.tsv")
        for row in rows:
            while len(row) < 8:
                row.append("")
            row[6], row[7] = moved[row[0]]
        text = "".join("\t".join(r) + "\n" for r in rows)
        (out / sp.name / "news.tsv").write_text(text, encoding="utf-8")
    return len(ids)


def random_embeddings(emb: Path, out: Path, seed: int) -> None:
    """Copy of the embedding table with random unit vectors of the same shape."""
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    vec = np.load(emb / "vectors.npy", allow_pickle=False)
    rnd = np.random.default_rng(seed).standard_normal(vec.shape).astype(np.float32)
    rnd /= np.linalg.norm(rnd, axis=1, keepdims=True)
    np.save(out / "vectors.npy", rnd, allow_pickle=False)
    shutil.copy(emb / "ids.json", out / "ids.json")
    meta = json.loads((emb / "metadata.json").read_text())
    meta["noise"] = f"random unit vectors (seed {seed}) replacing {emb}"
    (out / "metadata.json").write_text(json.dumps(meta, indent=2, sort_keys=True))


def hashed_text_embeddings(data: Path, out: Path, dim: int = 384, seed: int = 0) -> int:
    """Hashed bag-of-words (title + abstract, 2^16 buckets, sqrt-tf) projected to `dim`."""
    texts: dict[str, str] = {}
    for news in sorted(data.glob("*/news.tsv")):
        for row in _news_rows(news):
            texts.setdefault(row[0], (row[3] + " " + (row[4] if len(row) > 4 else "")).lower())
    ids = sorted(texts)
    buckets = 1 << 16
    proj = np.random.default_rng(seed).standard_normal((buckets, dim)).astype(np.float32) / np.sqrt(dim)
    vec = np.zeros((len(ids), dim), dtype=np.float32)
    for i, nid in enumerate(ids):
        words = [w.strip(".,;:!?\"'()") for w in texts[nid].split()]
        h, c = np.unique([zlib.crc32(w.encode()) % buckets for w in words if w], return_counts=True)
        if len(h):
            vec[i] = np.sqrt(c).astype(np.float32) @ proj[h]
    vec /= np.maximum(np.linalg.norm(vec, axis=1, keepdims=True), 1e-9)
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    np.save(out / "vectors.npy", vec, allow_pickle=False)
    (out / "ids.json").write_text(json.dumps(ids))
    meta = {"count": len(ids), "dimension": dim, "model": "hashed-bow-random-projection", "provider": "bench"}
    (out / "metadata.json").write_text(json.dumps(meta, indent=2))
    return len(ids)


def subsample(data: Path, out: Path, strides: dict[str, int]) -> dict[str, int]:
    """Every k-th behaviors line per split, news.tsv cut to the ids they mention."""
    if out.exists():
        shutil.rmtree(out)
    shutil.copytree(data, out, ignore=shutil.ignore_patterns("behaviors.tsv", "news.tsv", "synth_truth.json"))
    counts = {}
    for sp in sorted(p.parent for p in data.glob("*/behaviors.tsv")):
        k = strides.get(sp.name, 1)
        lines = (sp / "behaviors.tsv").read_text(encoding="utf-8").splitlines(keepends=True)[::k]
        cols = [ln.rstrip("\n").split("\t")[3:5] for ln in lines]
        ids = {tok.split("-")[0] for row in cols for col in row for tok in col.split()}
        (out / sp.name / "behaviors.tsv").write_text("".join(lines), encoding="utf-8")
        news = [r for r in _news_rows(sp / "news.tsv") if r[0] in ids]
        (out / sp.name / "news.tsv").write_text("".join("\t".join(r) + "\n" for r in news), encoding="utf-8")
        counts[sp.name] = len(lines)
    return counts


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--embeddings", type=Path, required=True)
    ap.add_argument("--out-data", type=Path, required=True)
    ap.add_argument("--out-emb", type=Path, required=True)
    ap.add_argument("--kg-noise", action="store_true")
    ap.add_argument("--text-noise", action="store_true")
    ap.add_argument("--text-hash", action="store_true")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--subsample", help="TRAIN_STRIDE,DEV_STRIDE: write a smaller copy to --out-data")
    args = ap.parse_args()
    if args.subsample:
        tr, dv = (int(x) for x in args.subsample.split(","))
        print(f"{args.out_data}: {subsample(args.data, args.out_data, {'train': tr, 'dev': dv})} impressions")
        return
    if args.kg_noise:
        n = shuffle_entities(args.data, args.out_data, args.seed)
        print(f"{args.out_data}: entity columns of {n} articles shuffled")
    else:
        if args.out_data.is_symlink():
            args.out_data.unlink()
        elif args.out_data.exists():
            shutil.rmtree(args.out_data)
        args.out_data.symlink_to(args.data.resolve())
    if args.text_hash:
        n = hashed_text_embeddings(args.data, args.out_emb, seed=args.seed)
        print(f"{args.out_emb}: hashed bag-of-words vectors of {n} articles")
    elif args.text_noise:
        random_embeddings(args.embeddings, args.out_emb, args.seed)
        print(f"{args.out_emb}: random text vectors")
    else:
        if args.out_emb.exists() or args.out_emb.is_symlink():
            args.out_emb.unlink() if args.out_emb.is_symlink() else shutil.rmtree(args.out_emb)
        args.out_emb.symlink_to(args.embeddings.resolve())


if __name__ == "__main__":
    main()
