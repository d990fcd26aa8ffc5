"""Benchmark: how close a MIND-format dataset is to real logs, and how simple baselines do on it.

    .venv/bin/python bench/synth_calibration.py ROOT [ROOT ...] [--json OUT.json]
    .venv/bin/python bench/synth_calibration.py --size tiny      # generates seed 7 under /tmp

For each dataset (synthetic or a real MIND download) prints
- the statistics MIND papers quote (users, news, impressions, history length, candidates
  and clicks per impression, CTR, cold dev candidates) and the dynamics of real logs:
  click share of the top 1% / 10% of articles, spread of per-article CTR, share of clicks
  within 48 h of an article's first appearance (and of its true publish hour when the
  dataset ships synth_truth.json);
- mean per-impression AUC on dev of simple baselines, computed here with numpy (and
  scipy.sparse for the products): random, popularity (train clicks), recency-weighted
  popularity (train clicks weighted by exp(-age / 24 h), age at the end of train, which
  ranks as at any dev impression time), item-kNN (cosine of co-click user vectors, user's
  history vs candidate) and text-kNN (tf-idf of title + abstract, history vs candidate).
Cold candidates (no train clicks) score 0 in the click baselines; ties count one half.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from newsrec.data import load_dataset
from newsrec.data.types import MindSplit

RECENCY_TAU_H = 24.0
CHUNK = 2000


def _stats(tr: MindSplit, dev: MindSplit, truth: dict | None) -> dict[str, float]:
    """The table of docs/data.md for one dataset."""
    out: dict[str, float] = {}
    both = (tr, dev)
    users = [{i.user_id for i in s.impressions} for s in both]
    out["users"] = f"{len(users[0]):,} / {len(users[1]):,} / {len(users[0] | users[1]):,}"  # type: ignore[assignment]
    out["news"] = f"{len(tr.news):,} / {len(dev.news):,} / {len(tr.news.keys() | dev.news.keys()):,}"  # type: ignore[assignment]
    out["impressions"] = f"{len(tr.impressions):,} / {len(dev.impressions):,}"  # type: ignore[assignment]
    n_cand = [sum(len(i.candidates) for i in s.impressions) for s in both]
    n_click = [sum(sum(i.labels) for i in s.impressions) for s in both]
    out["clicks"] = f"{n_click[0]:,} / {n_click[1]:,}"  # type: ignore[assignment]
    imps = tr.impressions + dev.impressions
    out["mean history length"] = float(np.mean([len(i.history) for i in imps]))
    out["empty-history share of impressions"] = float(np.mean([not i.history for i in imps]))
    out["candidates per impression"] = sum(n_cand) / len(imps)
    out["clicks per impression"] = sum(n_click) / len(imps)
    out["CTR"] = sum(n_click) / sum(n_cand)
    cold = [c not in tr.news for i in dev.impressions for c in i.candidates]
    out["cold share of dev candidates (not in train news)"] = float(np.mean(cold))
    out["dev news not in train news"] = len(dev.news.keys() - tr.news.keys()) / len(dev.news)
    clicks_of: dict[str, int] = {}
    shows_of: dict[str, int] = {}
    for i in imps:
        for c, lab in zip(i.candidates, i.labels, strict=True):
            shows_of[c] = shows_of.get(c, 0) + 1
            if lab:
                clicks_of[c] = clicks_of.get(c, 0) + 1
    cnt = np.sort(np.array([clicks_of.get(c, 0) for c in shows_of]))[::-1]
    for pct in (1, 10):
        k = max(1, round(len(cnt) * pct / 100))
        out[f"click share of top {pct}% articles"] = float(cnt[:k].sum() / cnt.sum())
    ctr = np.array([clicks_of.get(c, 0) / n for c, n in shows_of.items() if n >= 100])
    if ctr.size >= 10 and np.median(ctr) > 0:
        out["per-article CTR p90 / median (>= 100 shows)"] = float(np.percentile(ctr, 90) / np.median(ctr))
    out.update(_freshness(imps, truth))
    return out


def _freshness(imps: list, truth: dict | None) -> dict[str, float]:
    """Share of clicks within 48 h of first appearance as a candidate (and of publication)."""
    first: dict[str, datetime] = {}
    for i in sorted(imps, key=lambda i: i.time):
        for c in i.candidates:
            first.setdefault(c, i.time)
    ages = [
        (i.time - first[c]).total_seconds() / 3600
        for i in imps
        for c, lab in zip(i.candidates, i.labels, strict=True)
        if lab
    ]
    out = {"clicks within 48 h of first appearance": float(np.mean(np.array(ages) <= 48))}
    if truth is not None and len(next(iter(truth["news"].values()))) > 2:
        t0 = datetime(2019, 11, 9)
        pub = {n: v[2] for n, v in truth["news"].items()}
        real = [
            (i.time - t0).total_seconds() / 3600 - pub[c]
            for i in imps
            for c, lab in zip(i.candidates, i.labels, strict=True)
            if lab
        ]
        out["clicks within 48 h of publication (truth)"] = float(np.mean(np.array(real) <= 48))
    return out


def _auc(scores: np.ndarray, labels: np.ndarray) -> float:
    pos, neg = scores[labels], scores[~labels]
    gt = (pos[:, None] > neg[None, :]).mean()
    eq = (pos[:, None] == neg[None, :]).mean()
    return float(gt + 0.5 * eq)


def _mean_auc(dev: MindSplit, score: Callable[[int], np.ndarray]) -> tuple[float, float]:
    """Mean per-impression AUC over impressions with a click and a non-click, and its SE."""
    aucs = []
    for k, imp in enumerate(dev.impressions):
        lab = np.array(imp.labels, dtype=bool)
        if lab.all() or not lab.any():
            continue
        aucs.append(_auc(score(k), lab))
    a = np.array(aucs)
    return float(a.mean()), float(a.std(ddof=1) / np.sqrt(a.size))


def _index(tr: MindSplit, dev: MindSplit) -> dict[str, int]:
    ids: dict[str, int] = {}
    for s in (tr, dev):
        for n in s.news:
            ids.setdefault(n, len(ids))
        for i in s.impressions:
            for n in (*i.history, *i.candidates):
                ids.setdefault(n, len(ids))
    return ids


def _cooc(tr: MindSplit, ids: dict[str, int]) -> sp.csr_matrix:
    """Items x users, binary: who clicked the item in train (impression clicks and histories)."""
    users: dict[str, int] = {}
    rows, cols = [], []
    for i in tr.impressions:
        u = users.setdefault(i.user_id, len(users))
        for n in i.history:
            rows.append(ids[n])
            cols.append(u)
        for c, lab in zip(i.candidates, i.labels, strict=True):
            if lab:
                rows.append(ids[c])
                cols.append(u)
    x = sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=(len(ids), len(users)))
    x.data[:] = 1.0
    x.sum_duplicates()
    x.data[:] = 1.0
    return x


def _tfidf(tr: MindSplit, dev: MindSplit, ids: dict[str, int]) -> sp.csr_matrix:
    """Items x words: tf-idf of title + abstract (the text a topic model sees)."""
    vocab: dict[str, int] = {}
    rows, cols = [], []
    for s in (dev, tr):
        for n, art in s.news.items():
            for w in set(re.findall(r"[a-z]+", f"{art.title} {art.abstract}".lower())):
                rows.append(ids[n])
                cols.append(vocab.setdefault(w, len(vocab)))
    x = sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=(len(ids), len(vocab)))
    x.data[:] = 1.0
    df = np.asarray((x > 0).sum(axis=0)).ravel()
    x = x @ sp.diags(np.log((1 + x.shape[0]) / (1 + df)).astype(np.float32))
    return x


def _knn_scores(dev: MindSplit, ids: dict[str, int], x: sp.csr_matrix) -> list[np.ndarray]:
    """Per dev impression: mean cosine of the candidate's row of `x` to the history rows."""
    norm = np.sqrt(np.asarray(x.multiply(x).sum(axis=1)).ravel())
    xn = sp.diags(1.0 / np.maximum(norm, 1e-9)).astype(np.float32) @ x
    xn = xn.tocsr()
    out: list[np.ndarray] = []
    imps = dev.impressions
    for lo in range(0, len(imps), CHUNK):
        part = imps[lo : lo + CHUNK]
        r, c, v = [], [], []
        for k, imp in enumerate(part):
            h = list(dict.fromkeys(imp.history))
            r.extend([k] * len(h))
            c.extend(ids[n] for n in h)
            v.extend([1.0 / max(1, len(h))] * len(h))
        hm = sp.csr_matrix((np.array(v, np.float32), (r, c)), shape=(len(part), len(ids)))
        prof = (hm @ xn).tocsr()  # chunk x users (or words)
        cand = sorted({ids[n] for imp in part for n in imp.candidates})
        pos = {a: j for j, a in enumerate(cand)}
        sim = (prof @ xn[cand].T).toarray()
        for k, imp in enumerate(part):
            out.append(sim[k, [pos[ids[n]] for n in imp.candidates]])
    return out


def baselines(tr: MindSplit, dev: MindSplit) -> dict[str, tuple[float, float]]:
    """Mean dev AUC (and SE) of the simple baselines."""
    clicks: dict[str, int] = {}
    recent: dict[str, float] = {}
    t_end = max(i.time for i in tr.impressions)
    for i in tr.impressions:
        w = float(np.exp(-(t_end - i.time).total_seconds() / 3600 / RECENCY_TAU_H))
        for c, lab in zip(i.candidates, i.labels, strict=True):
            if lab:
                clicks[c] = clicks.get(c, 0) + 1
                recent[c] = recent.get(c, 0.0) + w
    rng = np.random.default_rng(0)
    ids = _index(tr, dev)
    knn = _knn_scores(dev, ids, _cooc(tr, ids))
    text = _knn_scores(dev, ids, _tfidf(tr, dev, ids))
    imps = dev.impressions
    return {
        "random": _mean_auc(dev, lambda k: rng.random(len(imps[k].candidates))),
        "popularity (train clicks)": _mean_auc(
            dev, lambda k: np.array([clicks.get(c, 0) for c in imps[k].candidates], float)
        ),
        "recency-popularity (24 h decay)": _mean_auc(
            dev, lambda k: np.array([recent.get(c, 0.0) for c in imps[k].candidates])
        ),
        "item-kNN (co-click cosine)": _mean_auc(dev, lambda k: knn[k]),
        "text-kNN (tf-idf cosine)": _mean_auc(dev, lambda k: text[k]),
    }


def run(root: Path) -> dict[str, object]:
    t0 = time.perf_counter()
    ds = load_dataset(root)
    tr, dev = ds["train"], ds["dev"]
    tp = root / "synth_truth.json"
    truth = json.loads(tp.read_text()) if tp.is_file() else None
    res: dict[str, object] = {"root": str(root), "stats": _stats(tr, dev, truth)}
    res["baselines_auc"] = {k: [round(a, 4), round(s, 4)] for k, (a, s) in baselines(tr, dev).items()}
    res["seconds"] = round(time.perf_counter() - t0, 1)
    return res


def _print(res: dict[str, object]) -> None:
    print(f"\n== {res['root']}  ({res['seconds']} s)")
    for k, v in res["stats"].items():  # type: ignore[attr-defined]
        print(f"  {k:<52} {v:.4f}" if isinstance(v, float) else f"  {k:<52} {v}")
    print("  dev AUC (mean per impression, +- SE):")
    for k, (a, s) in res["baselines_auc"].items():  # type: ignore[attr-defined]
        print(f"    {k:<50} {a:.4f} +- {s:.4f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("roots", nargs="*", type=Path)
    ap.add_argument("--size", help="generate this synthetic size (seed 7) under a temp dir first")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--json", type=Path, help="also write the results here")
    args = ap.parse_args()
    roots = list(args.roots)
    if args.size:
        from newsrec.data.synth import generate

        root = Path(tempfile.mkdtemp(prefix=f"synth-{args.size}-")) / "data"
        summary = generate(args.size, args.seed, root, progress=sys.stderr.isatty())
        print(f"generated {args.size} seed {args.seed} in {summary.seconds} s -> {root}")
        roots.append(root)
    results = [run(r) for r in roots]
    for res in results:
        _print(res)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
