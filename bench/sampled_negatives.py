"""Rewrite a MIND-format dataset into 1 clicked + N sampled unclicked candidates per click.

Real held-out logs are often published in this shape: every click becomes its own
impression whose negatives are drawn from the catalogue, not from what the user was
shown, so popularity and freshness are far easier signals than in MIND's logged lists.
This makes such a dataset from any MIND-format one, to test on a second structure:

- every clicked candidate of a labeled impression becomes an impression `<id>-<j>` of the
  same user, time and history, with the click and `--negatives` articles drawn uniformly
  without replacement from the split's news.tsv articles *published before* the
  impression time (MIND has no publish time: the first time an id appears in any split's
  behaviors, `newsrec.data.dataset.first_seen`), excluding the user's history and the
  click; candidate order is shuffled. A click with too few eligible articles is dropped
  (counted);
- unlabeled impressions (a test split) are kept as they are;
- news.tsv and the entity/relation vector files are copied unchanged.

Deterministic for `--seed`. The output passes `newsrec data validate`.

    python bench/sampled_negatives.py --src DATA --out OUT --negatives 19 --seed 0
"""

from __future__ import annotations

import argparse
import shutil
import sys
from datetime import datetime
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from newsrec.data.dataset import find_splits, first_seen, load_split  # noqa: E402
from newsrec.data.reader import format_time  # noqa: E402
from newsrec.data.types import Impression, MindSplit  # noqa: E402

COPIED = ("news.tsv", "entity_embedding.vec", "relation_embedding.vec")


class Catalogue:
    """A split's articles sorted by publish time: the eligible ones at `t` are a prefix."""

    def __init__(self, split: MindSplit, published: dict[str, datetime]) -> None:
        known = [(published[n].timestamp(), n) for n in split.news if n in published]
        known.sort()
        self.times = np.array([t for t, _ in known], dtype=np.float64)
        self.ids = [n for _, n in known]

    def sample(self, t: float, exclude: set[str], k: int, rng: np.random.Generator) -> list[str] | None:
        """`k` distinct ids published strictly before `t`, none in `exclude` (None: too few)."""
        n = int(np.searchsorted(self.times, t, "left"))
        if n < k:
            return None
        picked: list[str] = []
        seen: set[int] = set()
        while len(picked) < k:
            if len(seen) >= n:
                return None
            for i in rng.integers(0, n, size=2 * (k - len(picked)) + 4).tolist():
                if i in seen:
                    continue
                seen.add(i)
                nid = self.ids[i]
                if nid not in exclude:
                    picked.append(nid)
                    if len(picked) == k:
                        break
        return picked


def resample(
    imps: list[Impression], cat: Catalogue, negatives: int, rng: np.random.Generator
) -> tuple[list[str], dict[str, int]]:
    """behaviors.tsv lines of the rewritten impressions and counts (clicks, dropped, kept)."""
    lines: list[str] = []
    stats = {"clicks": 0, "dropped": 0, "unlabeled": 0}
    for imp in imps:
        head = f"{imp.user_id}\t{format_time(imp.time)}\t{' '.join(imp.history)}\t"
        if not imp.labels:
            stats["unlabeled"] += 1
            lines.append(f"{imp.impression_id}\t{head}{' '.join(imp.candidates)}\n")
            continue
        hist = set(imp.history)
        t = imp.time.timestamp()
        clicks = [c for c, y in zip(imp.candidates, imp.labels, strict=True) if y]
        for j, click in enumerate(clicks):
            stats["clicks"] += 1
            negs = cat.sample(t, hist | {click}, negatives, rng)
            if negs is None:
                stats["dropped"] += 1
                continue
            cands = [f"{click}-1"] + [f"{n}-0" for n in negs]
            order = rng.permutation(len(cands))
            lines.append(f"{imp.impression_id}-{j}\t{head}{' '.join(cands[i] for i in order)}\n")
    return lines, stats


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--src", type=Path, required=True, help="a MIND-format dataset root")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--negatives", type=int, default=19)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    dirs = find_splits(a.src)
    splits = {name: load_split(d, name) for name, d in dirs.items()}
    published = first_seen(splits)
    rng = np.random.default_rng(a.seed)
    for name, d in dirs.items():
        out = a.out / name
        out.mkdir(parents=True, exist_ok=True)
        for f in COPIED:
            if (d / f).is_file():
                shutil.copyfile(d / f, out / f)
        lines, stats = resample(
            splits[name].impressions, Catalogue(splits[name], published), a.negatives, rng
        )
        (out / "behaviors.tsv").write_text("".join(lines), encoding="utf-8")
        print(
            f"{name}: {len(lines)} impressions from {stats['clicks']} clicks "
            f"({stats['dropped']} dropped: too few earlier articles; {stats['unlabeled']} unlabeled kept)"
        )


if __name__ == "__main__":
    main()
