"""Load MIND-format split directories and datasets; derive publish times.

A split directory holds `news.tsv` and `behaviors.tsv` (required) and optionally
`entity_embedding.vec` and `relation_embedding.vec`. A dataset root holds split
directories named `train`, `dev`, `test`, or, as the MIND zip files unpack,
`MINDsmall_train`, `MINDlarge_dev`, ... (anything ending in `_train`/`_dev`/`_test`).
"""

from __future__ import annotations

import gc
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

import numpy as np

from newsrec.data.reader import read_behaviors, read_news, read_vectors
from newsrec.data.types import Entity, MindSplit
from newsrec.errors import DataError

NEWS_FILE = "news.tsv"
BEHAVIORS_FILE = "behaviors.tsv"
ENTITY_VEC_FILE = "entity_embedding.vec"
RELATION_VEC_FILE = "relation_embedding.vec"
REQUIRED_FILES = (NEWS_FILE, BEHAVIORS_FILE)
SPLIT_NAMES = ("train", "dev", "test")


@contextmanager
def _no_cyclic_gc() -> Iterator[None]:
    """Pause the cyclic garbage collector while millions of small objects are built.

    Reading creates only acyclic objects, yet every few thousand allocations trigger a
    collection that walks all of them: pausing it cut loading MIND-small scale from
    about 20 s to 12-15 s of CPU here (bench/data_load.py). Reference counting still
    frees memory as usual.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def is_split_dir(path: Path) -> bool:
    """True when `path` is a directory with a news.tsv (a split, not a dataset root)."""
    return path.is_dir() and (path / NEWS_FILE).is_file()


def load_split(
    path: str | Path, name: str | None = None, entity_cache: dict[str, list[Entity]] | None = None
) -> MindSplit:
    """Read one split directory; bad rows of all its files are in `split.bad_rows`.

    Raises DataError naming the path when the directory or a required file is missing.
    """
    path = Path(path)
    if not path.is_dir():
        raise DataError(f"{path}: split directory not found")
    for fname in REQUIRED_FILES:
        if not (path / fname).is_file():
            raise DataError(f"{path / fname}: required file not found")
    with _no_cyclic_gc():
        articles, bad = read_news(path / NEWS_FILE, entity_cache)
        impressions, bad_b = read_behaviors(path / BEHAVIORS_FILE)
    bad.extend(bad_b)
    vectors: list[dict[str, np.ndarray] | None] = []
    for fname in (ENTITY_VEC_FILE, RELATION_VEC_FILE):
        if (path / fname).is_file():
            vecs, bad_v = read_vectors(path / fname)
            bad.extend(bad_v)
            vectors.append(vecs)
        else:
            vectors.append(None)
    return MindSplit(
        name=name or path.name,
        news={a.news_id: a for a in articles},
        impressions=impressions,
        entity_vectors=vectors[0],
        relation_vectors=vectors[1],
        bad_rows=bad,
    )


def find_splits(root: str | Path) -> dict[str, Path]:
    """Map split name -> directory for a dataset root or a single split directory."""
    root = Path(root)
    if not root.exists():
        raise DataError(f"{root}: directory not found")
    if not root.is_dir():
        raise DataError(f"{root}: not a directory")
    if is_split_dir(root):
        return {root.name: root}
    found: dict[str, Path] = {}
    for child in sorted(root.iterdir()):
        if not child.is_dir():
            continue
        for split in SPLIT_NAMES:
            if child.name == split or child.name.lower().endswith("_" + split):
                if split in found:
                    raise DataError(f"{root}: two directories for split {split!r}: {found[split]}, {child}")
                found[split] = child
    if not found:
        raise DataError(
            f"{root}: no {NEWS_FILE} here and no train/, dev/ or test/ split directories "
            f"(expected {root}/{NEWS_FILE} or {root}/train/{NEWS_FILE})"
        )
    return {s: found[s] for s in SPLIT_NAMES if s in found}


def load_dataset(root: str | Path) -> dict[str, MindSplit]:
    """Load every split under `root` (train, dev and test when present), or `root` itself
    when it is a single split directory ({its name: split})."""
    cache: dict[str, list[Entity]] = {}  # splits share most news rows: parse their entities once
    return {name: load_split(path, name, cache) for name, path in find_splits(root).items()}


def first_seen(splits: Iterable[MindSplit] | Mapping[str, MindSplit]) -> dict[str, datetime]:
    """Publish time of each news id: the earliest impression time at which it appears,
    in a history or among the candidates, over all the given splits.

    MIND has no publish time, so this is the best available stand-in. It is an upper
    bound (an id in a history was clicked before that impression) and ids that never
    appear in any behaviors.tsv get no entry.
    """
    seq = list(splits.values()) if isinstance(splits, Mapping) else list(splits)
    imps = [imp for split in seq for imp in split.impressions]
    imps.sort(key=lambda imp: imp.time, reverse=True)
    out: dict[str, datetime] = {}
    # Latest first, so the last write of each id is its earliest time; dict.fromkeys and
    # update run in C, ~10x faster than a min() per id.
    for imp in imps:
        out.update(dict.fromkeys(imp.history, imp.time))
        out.update(dict.fromkeys(imp.candidates, imp.time))
    return out
