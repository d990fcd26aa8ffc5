"""Validation of a MIND-format directory: counts, bad rows by reason, id coverage.

`validate_dataset` never raises on bad data: a missing directory or file, an empty
news.tsv or too many bad rows make the report unusable with a one-line reason.
`require_usable` (datasets), `require_usable_news` (news files) and `require_embeddings`
(text-embedding tables) are the one gate every entry point calls before any work: they
raise `UnusableData` with that same reason.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from newsrec.data.dataset import find_splits, load_split
from newsrec.data.reader import read_news
from newsrec.data.types import MindSplit
from newsrec.embed.store import IDS_FILE, VECTORS_FILE, load_embeddings
from newsrec.errors import DataError

FIRST_LINES = 10  # file:line locations kept per bad-row reason


@dataclass
class SplitReport:
    """What one split holds and what is wrong with it."""

    name: str
    path: str
    counts: dict[str, int] = field(default_factory=dict)
    rows: int = 0  # rows read from news.tsv, behaviors.tsv and the .vec files, good and bad
    bad_share: float = 0.0
    bad_rows: dict[str, dict[str, Any]] = field(default_factory=dict)  # reason -> {count, first}
    coverage: dict[str, float] = field(default_factory=dict)  # history / impressions ids found in news.tsv
    usable: bool = True
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "path": self.path,
            "counts": dict(self.counts),
            "rows": self.rows,
            "bad_share": self.bad_share,
            "bad_rows": {
                k: {"count": v["count"], "first": list(v["first"])} for k, v in self.bad_rows.items()
            },
            "coverage": dict(self.coverage),
            "usable": self.usable,
            "reason": self.reason,
        }


@dataclass
class ValidationReport:
    """The report of `validate_dataset`; `usable` is what the pipeline gates on."""

    root: str
    max_bad_share: float
    splits: list[SplitReport] = field(default_factory=list)
    usable: bool = True
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "root": self.root,
            "max_bad_share": self.max_bad_share,
            "usable": self.usable,
            "reason": self.reason,
            "splits": {s.name: s.to_dict() for s in self.splits},
        }


def summarize_split(split: MindSplit, path: Path, max_bad_share: float) -> SplitReport:
    """Counts, bad rows and coverage of a loaded split, judged against `max_bad_share`."""
    imps = split.impressions
    entities = {e for a in split.news.values() for e in a.entity_ids()}
    counts = {
        "news": len(split.news),
        "entities": len(entities),
        "entity_vectors": len(split.entity_vectors or {}),
        "users": len({i.user_id for i in imps}),
        "impressions": len(imps),
        "clicks": sum(sum(i.labels) for i in imps),
        "unlabeled_impressions": sum(1 for i in imps if not i.labels),
    }
    by_reason: dict[str, dict[str, Any]] = {}
    for b in split.bad_rows:
        group = by_reason.setdefault(b.reason, {"count": 0, "first": []})
        group["count"] += 1
        if len(group["first"]) < FIRST_LINES:
            group["first"].append(f"{b.file}:{b.line}")
    good_rows = len(split.news) + len(imps) + counts["entity_vectors"] + len(split.relation_vectors or {})
    rows = good_rows + len(split.bad_rows)
    news = split.news
    hist = Counter(nid in news for i in imps for nid in i.history)
    cand = Counter(nid in news for i in imps for nid in i.candidates)
    report = SplitReport(
        name=split.name,
        path=str(path),
        counts=counts,
        rows=rows,
        bad_share=round(len(split.bad_rows) / rows, 6) if rows else 0.0,
        bad_rows=dict(sorted(by_reason.items(), key=lambda kv: -kv[1]["count"])),
        coverage={
            "history": round(hist[True] / max(1, hist[True] + hist[False]), 6),
            "impressions": round(cand[True] / max(1, cand[True] + cand[False]), 6),
        },
    )
    if not news:
        report.usable, report.reason = False, f"{path / 'news.tsv'}: no usable news rows"
    elif not imps:
        report.usable, report.reason = False, f"{path / 'behaviors.tsv'}: no usable impressions"
    elif report.bad_share > max_bad_share:
        worst = next(iter(report.bad_rows))
        report.usable = False
        report.reason = (
            f"{split.name}: {len(split.bad_rows)} bad rows of {rows} ({report.bad_share:.2%} > "
            f"{max_bad_share:.2%}), mostly {worst} at {report.bad_rows[worst]['first'][0]}"
        )
    return report


def validate_dataset(
    root: str | Path, max_bad_share: float = 0.01, keep: dict[str, MindSplit] | None = None
) -> ValidationReport:
    """Validate a split directory or a dataset root (train/, dev/, optional test/).
    The loaded splits go into `keep` when given (what `load_dataset` would return), so
    a gate in front of training does not read the files twice."""
    root = Path(root)
    report = ValidationReport(root=str(root), max_bad_share=max_bad_share)
    try:
        splits = find_splits(root)
    except DataError as exc:
        report.usable, report.reason = False, str(exc)
        return report
    entity_cache: dict[str, Any] = {}  # as load_dataset: parse the shared news rows' entities once
    for name, path in splits.items():
        try:
            split = load_split(path, name, entity_cache)
            if keep is not None:
                keep[name] = split
        except DataError as exc:
            report.splits.append(SplitReport(name=name, path=str(path), usable=False, reason=str(exc)))
            continue
        report.splits.append(summarize_split(split, path, max_bad_share))
    failed = [s for s in report.splits if not s.usable]
    if failed:
        report.usable, report.reason = False, failed[0].reason
    return report


# --- the one validation gate of every entry point ----------------------------------


class UnusableData(DataError):
    """`data validate` calls the input unusable; the message is its file:line reason."""


def require_usable(
    root: str | Path, max_bad_share: float = 0.01, keep: dict[str, MindSplit] | None = None
) -> ValidationReport:
    """The gate of `train`, `kg`, `ablation`, `evaluate` and the pipeline: raise
    UnusableData with `data validate`'s reason unless the dataset is usable (the loaded
    splits go into `keep`, see `validate_dataset`)."""
    report = validate_dataset(root, max_bad_share=max_bad_share, keep=keep)
    if not report.usable:
        raise UnusableData(report.reason)
    return report


def require_usable_news(paths: Sequence[str | Path], max_bad_share: float = 0.01) -> None:
    """The gate of `embed`: every news.tsv must have usable rows and few bad ones."""
    for p in paths:
        path = Path(p)
        articles, bad = read_news(path)  # DataError naming a missing file
        rows = len(articles) + len(bad)
        if not articles:
            first = (
                f" ({len(bad)} bad rows, first {bad[0].file}:{bad[0].line}: {bad[0].reason})" if bad else ""
            )
            raise UnusableData(f"{path}: no usable news rows{first}")
        if len(bad) / rows > max_bad_share:
            raise UnusableData(
                f"{path}: {len(bad)} bad rows of {rows} ({len(bad) / rows:.2%} > {max_bad_share:.2%}), "
                f"first {bad[0].file}:{bad[0].line}: {bad[0].reason}"
            )


def require_embeddings(
    directory: str | Path,
    data: str | Path,
    splits: Sequence[str] = ("train", "dev"),
    loaded: dict[str, MindSplit] | None = None,
) -> None:
    """Refuse a text-embedding table that is empty, zero-dimensional, not finite, or lacks
    a vector for a news id of the `splits` of `data` (the articles training encodes);
    `loaded` splits of `data` spare reading its news files again."""
    directory = Path(directory)
    table = load_embeddings(directory)  # refuses partial, edited, empty and 0-dim tables
    vec_file = directory / VECTORS_FILE
    finite = np.isfinite(table.vectors).all(axis=1)
    if not finite.all():
        row = int(np.argmin(finite))
        raise UnusableData(f"{vec_file}: row {row} ({table.ids[row]}) is not finite")
    wanted: dict[str, None] = {}  # news ids in file order, once
    for name, path in find_splits(data).items():
        if name in splits:
            if loaded and name in loaded:
                wanted.update(dict.fromkeys(loaded[name].news))
            else:
                wanted.update(dict.fromkeys(a.news_id for a in read_news(path / "news.tsv")[0]))
    missing = [i for i in wanted if table.row(i) is None]
    if missing:
        raise UnusableData(
            f"{directory / IDS_FILE}: {len(missing)} of {len(wanted)} news ids of {data} have no vector "
            f"(first: {', '.join(missing[:5])}); embed the news.tsv of every split (newsrec embed --news ...)"
        )
