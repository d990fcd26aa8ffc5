"""Our ALS, baselines and (optionally) ranker against collaborative-filtering libraries.

On a MIND-format dataset: every CF model is fitted on the labeled train impressions
(each user's longest history + every clicked candidate, the users and clicks our
co-click and ALS models read) and scores the same sampled dev impressions, with the
metrics of `newsrec/eval/metrics.py`; paired per-impression differences (mean ± SE,
`newsrec/eval/paired.py`) of our rows against the best peer.

Peers (`implicit` 0.7.x, CPU):
- `implicit_als`: `AlternatingLeastSquares` with our hyper-parameters (confidence
  1 + alpha * count passed as the matrix value, so it is the same model as ours: a check
  of our solver), the dev user folded in from the history with `recalculate_user`;
- `implicit_als_default`: the library's defaults (100 factors, reg 0.01, value = count),
  folded in the same way;
- `implicit_item_cosine`: `CosineRecommender` (item-kNN), history -> candidate.

`lightfm` is not run: it has no wheel for this Python and its sdist does not build under
the current setuptools (`AttributeError: ... '__LIGHTFM_SETUP__'`).

Peers see each dev user's full history; our rows see what the serving artifact sees
(with `--run`: its last `max_history` articles; without: the full history).

    python bench/cf_peers.py --data DATA [--run RUN] [--max-impressions 20000] [--out OUT.json]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # implicit warns (and slows) with threaded BLAS

import numpy as np  # noqa: E402
import scipy.sparse as sp  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from newsrec.data import load_dataset  # noqa: E402
from newsrec.data.types import Impression  # noqa: E402
from newsrec.eval.baselines import baseline_scores, build_baselines  # noqa: E402
from newsrec.eval.evaluate import sample_impressions  # noqa: E402
from newsrec.eval.metrics import MetricAccumulator  # noqa: E402
from newsrec.eval.paired import PAIRED_METRICS, paired_diff, write_json  # noqa: E402
from newsrec.models.als import ALSParams, fit_als  # noqa: E402
from newsrec.models.cooc import interaction_counts  # noqa: E402
from newsrec.train.prepare import labeled  # noqa: E402

PEERS = ("implicit_als", "implicit_als_default", "implicit_item_cosine")


@dataclass
class Enc:
    """An impression in table rows (what the baselines read)."""

    hist: np.ndarray
    cands: np.ndarray
    labels: np.ndarray
    time: float


def _rows(imp_ids: Sequence[str], row_of: Callable[[str], int | None]) -> np.ndarray:
    return np.array([-1 if (r := row_of(n)) is None else r for n in imp_ids], dtype=np.int64)


def history_matrix(dev: Sequence[Impression], row_of: Callable[[str], int | None], n: int) -> sp.csr_matrix:
    """(impressions, items) counts of each dev impression's full history (known rows)."""
    rows, cols = [], []
    for i, imp in enumerate(dev):
        r = _rows(imp.history, row_of)
        r = r[r >= 0]
        rows.extend([i] * len(r))
        cols.extend(r.tolist())
    m = sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=(len(dev), n))
    m.sum_duplicates()
    return m


def _dot_scores(user: np.ndarray, items: np.ndarray, dev: Sequence[Impression], row_of) -> list[np.ndarray]:
    out = []
    for i, imp in enumerate(dev):
        c = _rows(imp.candidates, row_of)
        ok = (c >= 0) & (c < len(items))
        out.append((items[np.where(ok, c, 0)] @ user[i]) * ok)
    return out


def implicit_peers(
    counts: sp.csr_matrix, hist: sp.csr_matrix, dev: Sequence[Impression], row_of, p: ALSParams, threads: int
) -> tuple[dict[str, list[np.ndarray]], dict[str, float]]:
    """Scores per dev impression of every `implicit` peer, and its fit seconds."""
    from implicit.cpu.als import AlternatingLeastSquares
    from implicit.nearest_neighbours import CosineRecommender

    scores: dict[str, list[np.ndarray]] = {}
    secs: dict[str, float] = {}
    conf = counts.copy()
    conf.data = 1.0 + p.alpha * conf.data  # HKV confidence, as our model uses it
    hconf = hist.copy()
    hconf.data = 1.0 + p.alpha * hconf.data
    runs = {
        "implicit_als": (
            dict(factors=p.factors, regularization=p.regularization, iterations=p.iterations),
            conf,
            hconf,
        ),
        "implicit_als_default": ({}, counts, hist),
    }
    for name, (kw, train_m, hist_m) in runs.items():
        t0 = time.perf_counter()
        model = AlternatingLeastSquares(random_state=p.seed, num_threads=threads, **kw)
        model.fit(sp.csr_matrix(train_m, dtype=np.float32), show_progress=False)
        users = model.recalculate_user(np.arange(hist_m.shape[0]), sp.csr_matrix(hist_m, dtype=np.float32))
        secs[name] = time.perf_counter() - t0
        scores[name] = _dot_scores(np.asarray(users), np.asarray(model.item_factors), dev, row_of)
    t0 = time.perf_counter()
    knn = CosineRecommender(K=200, num_threads=threads)
    knn.fit(sp.csr_matrix(counts, dtype=np.float32), show_progress=False)
    sim = sp.csr_matrix(knn.similarity)  # (items, items)
    hs = sp.csr_matrix(hist @ sim)  # history -> every item
    scores["implicit_item_cosine"] = []
    for i, imp in enumerate(dev):
        c = _rows(imp.candidates, row_of)
        ok = (c >= 0) & (c < hs.shape[1])
        s = hs[i][:, np.where(ok, c, 0)].toarray()[0]
        scores["implicit_item_cosine"].append(s.astype(np.float64) * ok)
    secs["implicit_item_cosine"] = time.perf_counter() - t0
    return scores, secs


def accumulate(scores: dict[str, list[np.ndarray]], enc: Sequence[Enc]) -> dict[str, MetricAccumulator]:
    out = {}
    for name, per in scores.items():
        acc = MetricAccumulator(keep=True)
        for e, s in zip(enc, per, strict=True):
            acc.add(e.labels, np.asarray(s, dtype=np.float64))
        out[name] = acc
    return out


def _se(acc: MetricAccumulator, k: str) -> float:
    v = np.asarray(acc.values.get(k, []), dtype=np.float64)
    v = v[~np.isnan(v)]
    return float(v.std(ddof=1) / np.sqrt(len(v))) if len(v) > 1 else float("nan")


def report(
    accs: dict[str, MetricAccumulator], kinds: dict[str, str], secs: dict[str, float]
) -> dict[str, Any]:
    """Print the table and the paired differences against the best peer; return them."""
    res = {n: a.result() for n, a in accs.items()}
    print("| scorer | kind | AUC ± SE | MRR | nDCG@10 | fit+fold-in s |")
    print("|---|---|---|---|---|---|")
    for n in sorted(res, key=lambda n: -(res[n]["auc"] or 0)):
        r = res[n]
        fit = f"{secs[n]:.1f}" if n in secs else ""
        auc = f"{r['auc']:.4f} ± {_se(accs[n], 'auc'):.4f}"
        print(f"| {n} | {kinds[n]} | {auc} | {r['mrr']:.4f} | {r['ndcg10']:.4f} | {fit} |")
    peers = [n for n in res if kinds[n] == "peer"]
    best = max(peers, key=lambda n: res[n]["auc"] or 0) if peers else None
    pairs: dict[str, Any] = {}
    if best:
        print(f"\nbest peer: {best}; paired differences (ours − {best}, mean ± SE over impressions):")
        for n in [n for n in res if kinds[n] in ("model", "ours")]:
            pairs[n] = {k: paired_diff(accs[n].values[k], accs[best].values[k]) for k in PAIRED_METRICS}
            cells = [f"Δ{k} {d['diff']:+.4f} ± {d['se']:.4f} (z {d['z']:+.1f})" for k, d in pairs[n].items()]
            print(f"  {n}: " + ", ".join(cells))
    return {
        "scorers": {n: {**res[n], "kind": kinds[n], "auc_se": _se(accs[n], "auc")} for n in res},
        "best_peer": best,
        "paired_vs_best_peer": pairs,
        "fit_seconds": secs,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--run", type=Path, help="a trained run: its ranker and two-tower rows, in its rows")
    ap.add_argument("--max-impressions", type=int, default=20000)
    ap.add_argument(
        "--seed", type=int, default=0, help="impression sample (as `newsrec evaluate`) and models"
    )
    d = ALSParams()
    ap.add_argument("--factors", type=int, default=d.factors)
    ap.add_argument("--reg", type=float, default=d.regularization)
    ap.add_argument("--alpha", type=float, default=d.alpha)
    ap.add_argument("--iterations", type=int, default=d.iterations)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--no-peers", action="store_true", help="only our rows (tuning)")
    ap.add_argument("--out", type=Path)
    a = ap.parse_args()
    p = ALSParams(a.factors, a.reg, a.alpha, a.iterations, d.cg_steps, a.seed)
    splits = load_dataset(a.data)
    train = labeled(splits["train"].impressions)
    dev = sample_impressions(labeled(splits["dev"].impressions), a.max_impressions, a.seed)
    scores: dict[str, list[np.ndarray]] = {}
    kinds: dict[str, str] = {}
    secs: dict[str, float] = {}
    text = None
    if a.run:
        from newsrec.models.artifact import load_serving
        from newsrec.train.ranker import encode_impressions

        model = load_serving(a.run / "serving", threads=a.threads)
        row_of: Callable[[str], int | None] = model.row
        n = len(model.news_ids())
        encoded = list(encode_impressions(model, dev))
        enc = [Enc(e.hist, e.cands, e.labels, e.time) for e in encoded]
        t = model.table
        scores["two_tower"] = [(t.vectors[np.maximum(e.cands, 0)] @ e.user) * (e.cands >= 0) for e in encoded]
        if model.ranker is not None:
            scores["ranker"] = [model.score_rows(e.user, e.hist, e.cands, e.time) for e in encoded]
        kinds.update(dict.fromkeys(scores, "model"))
        text = t.text
    else:
        ids = sorted(set(splits["train"].news) | set(splits["dev"].news))
        index = {nid: i for i, nid in enumerate(ids)}
        row_of, n = index.get, len(ids)
        enc = [
            Enc(
                _rows(i.history, row_of),
                _rows(i.candidates, row_of),
                np.array(i.labels, np.int8),
                i.time.timestamp(),
            )
            for i in dev
        ]
    t0 = time.perf_counter()
    base = build_baselines(train, row_of, n, text, a.seed)
    counts = interaction_counts(train, row_of, n)
    base.als, _ = fit_als(counts, p, progress=True)
    scores.update(baseline_scores(base, enc))
    secs["als"] = time.perf_counter() - t0  # all baselines; ALS is most of it
    kinds.update({k: ("ours" if k == "als" else "baseline") for k in scores if k not in kinds})
    print(
        f"{a.data}: {len(train)} train impressions, {counts.shape[0]} users, {counts.nnz} clicks; "
        f"{len(dev)} dev impressions; ALS k={p.factors} reg={p.regularization} alpha={p.alpha} "
        f"it={p.iterations}"
    )
    if not a.no_peers:
        peer, psecs = implicit_peers(counts, history_matrix(dev, row_of, n), dev, row_of, p, a.threads)
        scores.update(peer)
        secs.update(psecs)
        kinds.update(dict.fromkeys(peer, "peer"))
    out = report(accumulate(scores, enc), kinds, secs)
    if a.out:
        a.out.parent.mkdir(parents=True, exist_ok=True)
        write_json(
            a.out, {"data": str(a.data), "run": str(a.run), "impressions": len(dev), "als": p.__dict__, **out}
        )
        print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
