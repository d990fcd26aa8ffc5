"""Feedback events (impressions and clicks of served lists) -> a MIND-format dataset.

The gateway appends one entry per LogFeedback event to a Redis Stream (services/feedback.py
writes `FeedbackEvent.to_fields`). This module reads that stream with a Redis client the
caller passes in (a range of it, or a consumer group: at-least-once, acknowledged only
after the dataset is written), joins each served list's impressions with its clicks, and
writes `train/` (and `dev/`, split by time) with behaviors.tsv and news.tsv.

Replays are harmless: an event id seen twice counts once, and a list's impressions are
the union of its shown ids, so a re-sent event never makes a second impression row.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from newsrec.atomic import StagedDir
from newsrec.data.reader import format_time, read_news
from newsrec.data.types import Impression
from newsrec.errors import DataError, InvalidInput

_FIELDS = ("event_id", "request_id", "user_id", "variant", "model_version", "time_ms", "served_ms")
_LISTS = ("shown", "clicked", "history")


@dataclass(frozen=True, slots=True)
class FeedbackEvent:
    """One LogFeedback event as stored in the stream (ids already checked by the gateway)."""

    event_id: str
    request_id: str
    user_id: str
    variant: str
    model_version: str
    time_ms: int  # when it happened (unix milliseconds, UTC)
    served_ms: int  # when the list was served
    shown: tuple[str, ...] = ()
    clicked: tuple[str, ...] = ()
    history: tuple[str, ...] = ()  # the request's history tail (impression events only)

    def to_fields(self) -> dict[str, str]:
        """The stream entry: flat string fields, id lists as JSON arrays."""
        out = {name: str(getattr(self, name)) for name in _FIELDS}
        out |= {name: json.dumps(list(getattr(self, name))) for name in _LISTS}
        return out

    @classmethod
    def from_fields(cls, fields: Mapping[Any, Any], where: str = "event") -> FeedbackEvent:
        """Parse a stream entry (bytes or str keys/values); DataError naming entry and field."""
        text = {_s(k): _s(v) for k, v in fields.items()}
        values: dict[str, Any] = {}
        for name in (*_FIELDS, *_LISTS):
            if name not in text:
                raise DataError(f"{where}: field {name!r} missing")
            raw = text[name]
            try:
                if name in _LISTS:
                    items = json.loads(raw)
                    if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
                        raise ValueError("not a JSON list of strings")
                    values[name] = tuple(items)
                elif name.endswith("_ms"):
                    values[name] = int(raw)
                else:
                    values[name] = raw
            except ValueError as exc:
                raise DataError(f"{where}: field {name!r}: {exc}") from None
        return cls(**values)


def _s(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def read_range(
    client: Any, stream: str, start: str = "-", end: str = "+", batch: int = 1000
) -> Iterator[tuple[str, FeedbackEvent]]:
    """(stream id, event) of every entry in [start, end], oldest first, `batch` per round trip."""
    cursor = start
    while True:
        rows = client.xrange(stream, min=cursor, max=end, count=batch)
        for raw_id, fields in rows:
            sid = _s(raw_id)
            yield sid, FeedbackEvent.from_fields(fields, f"{stream} entry {sid}")
        if len(rows) < batch:
            return
        cursor = "(" + _s(rows[-1][0])  # exclusive start: the next entry after the last one


def read_group(
    client: Any, stream: str, group: str, consumer: str, batch: int = 1000
) -> list[tuple[str, FeedbackEvent]]:
    """Every entry the consumer group has not acknowledged: this consumer's pending entries
    first (a previous export that died before acknowledging), then new ones. The group is
    created at the stream's start when missing. Acknowledge with `ack` once written."""
    import redis

    try:
        client.xgroup_create(stream, group, id="0", mkstream=True)
    except redis.ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise
    out: list[tuple[str, FeedbackEvent]] = []
    for start in ("0", ">"):
        while True:
            got = client.xreadgroup(group, consumer, {stream: start}, count=batch)
            rows = got[0][1] if got else []
            rows = [(i, f) for i, f in rows if f]  # a pending entry trimmed away has no fields
            for raw_id, fields in rows:
                sid = _s(raw_id)
                out.append((sid, FeedbackEvent.from_fields(fields, f"{stream} entry {sid}")))
            if len(rows) < batch:
                break
            if start != ">":
                start = _s(rows[-1][0])  # pending entries are paged by id
    return out


def ack(client: Any, stream: str, group: str, ids: Sequence[str], batch: int = 1000) -> int:
    """Acknowledge exported entries (XACK), in batches; returns how many were pending."""
    done = 0
    for i in range(0, len(ids), batch):
        done += int(client.xack(stream, group, *ids[i : i + batch]))
    return done


@dataclass
class JoinStats:
    events: int = 0
    duplicate_events: int = 0  # the same event id again (a retry or a replay)
    impressions: int = 0
    clicks: int = 0
    clicks_without_impression: int = 0  # a list with clicks but no shown ids (yet)
    clicks_not_shown: int = 0  # clicked ids outside the list's shown ids

    def to_dict(self) -> dict[str, int]:
        return dict(vars(self))


@dataclass
class _Served:
    first: FeedbackEvent
    time_ms: int
    shown: dict[str, None] = field(default_factory=dict)  # insertion-ordered set
    clicked: set[str] = field(default_factory=set)


def join(events: Iterable[FeedbackEvent]) -> tuple[list[Impression], JoinStats]:
    """One labelled impression per served list with shown ids, in time order: candidates are
    the union of its shown ids (first-shown order), label 1 for those clicked."""
    stats = JoinStats()
    seen: set[str] = set()
    lists: dict[str, _Served] = {}
    for ev in events:
        stats.events += 1
        if ev.event_id in seen:
            stats.duplicate_events += 1
            continue
        seen.add(ev.event_id)
        entry = lists.get(ev.request_id)
        if entry is None:
            entry = lists[ev.request_id] = _Served(ev, ev.time_ms)
        if ev.shown:
            if not entry.shown:  # the impression's time and history: its first shown event
                entry.first, entry.time_ms = ev, ev.time_ms
            entry.shown.update(dict.fromkeys(ev.shown))
        entry.clicked.update(ev.clicked)
    out = []
    for rid, entry in lists.items():
        if not entry.shown:
            stats.clicks_without_impression += len(entry.clicked)
            continue
        stats.clicks_not_shown += len(entry.clicked - entry.shown.keys())
        labels = [int(n in entry.clicked) for n in entry.shown]
        stats.impressions += 1
        stats.clicks += sum(labels)
        when = datetime.fromtimestamp(entry.time_ms / 1000, UTC).replace(tzinfo=None)
        out.append(
            Impression(rid, entry.first.user_id, when, list(entry.first.history), list(entry.shown), labels)
        )
    out.sort(key=lambda imp: (imp.time, imp.impression_id))
    return out, stats


@dataclass
class Catalogue:
    """Articles of the catalogue news.tsv files: ids, and each id's row as read (first wins)."""

    paths: list[Path]
    rows: dict[str, str]


def read_catalogue(paths: Sequence[Path]) -> Catalogue:
    """The usable rows of `paths` (rows `read_news` refuses are left out), verbatim."""
    rows: dict[str, str] = {}
    for path in paths:
        articles, _bad = read_news(path)
        usable = {a.news_id for a in articles}
        with Path(path).open(encoding="utf-8-sig", errors="replace") as f:
            for line in f:
                news_id = line.split("\t", 1)[0].strip()
                if news_id in usable and news_id not in rows:
                    rows[news_id] = line.rstrip("\r\n")
    if not rows:
        raise DataError(f"{', '.join(map(str, paths))}: no usable news rows in the catalogue")
    return Catalogue(list(paths), rows)


def resolve(
    impressions: list[Impression], catalogue: Catalogue, skip_unknown: bool
) -> tuple[list[Impression], int]:
    """The impressions with every id in the catalogue. An unknown id fails with one line,
    or with `skip_unknown` is dropped from candidates and histories (count returned);
    an impression left without candidates is dropped."""
    known = catalogue.rows
    unknown: dict[str, None] = {}
    for imp in impressions:
        for news_id in (*imp.candidates, *imp.history):
            if news_id not in known:
                unknown[news_id] = None
    if not unknown:
        return impressions, 0
    if not skip_unknown:
        first = ", ".join(list(unknown)[:5])
        where = ", ".join(map(str, catalogue.paths))
        raise InvalidInput(
            f"{len(unknown)} news ids of the events are not in the catalogue {where} (first: {first}); "
            "add their news.tsv with --news, or drop them with --skip-unknown"
        )
    out = []
    for imp in impressions:
        pairs = [(n, lab) for n, lab in zip(imp.candidates, imp.labels, strict=True) if n in known]
        if pairs:
            history = [n for n in imp.history if n in known]
            cands, labels = [n for n, _ in pairs], [lab for _, lab in pairs]
            out.append(Impression(imp.impression_id, imp.user_id, imp.time, history, cands, labels))
    return out, len(unknown)


def split_by_time(
    impressions: list[Impression], dev_fraction: float, dev_after: datetime | None = None
) -> tuple[list[Impression], list[Impression]]:
    """(train, dev): impressions at or after `dev_after` go to dev, else the latest
    `dev_fraction` of them (by time). A split that would leave train empty fails."""
    ordered = sorted(impressions, key=lambda imp: imp.time)
    if dev_after is not None:
        cut = next((i for i, imp in enumerate(ordered) if imp.time >= dev_after), len(ordered))
    else:
        if not 0.0 <= dev_fraction < 1.0:
            raise InvalidInput(f"dev_fraction: must be in [0, 1), got {dev_fraction}")
        cut = len(ordered) - int(len(ordered) * dev_fraction)
    if cut == 0:
        raise InvalidInput(
            f"the split leaves no train impressions ({len(ordered)} in all): move the dev cut later"
        )
    return ordered[:cut], ordered[cut:]


def behaviors_tsv(impressions: Iterable[Impression]) -> str:
    """MIND behaviors.tsv rows: id, user, time, history, candidates as `ID-label`."""
    lines = []
    for imp in impressions:
        cands = " ".join(f"{n}-{lab}" for n, lab in zip(imp.candidates, imp.labels, strict=True))
        row = (imp.impression_id, imp.user_id, format_time(imp.time), " ".join(imp.history), cands)
        lines.append("\t".join(row) + "\n")
    return "".join(lines)


@dataclass
class ExportSummary:
    out: Path
    join: JoinStats
    splits: dict[str, int]  # split -> impressions written
    unknown_ids_skipped: int = 0
    acknowledged: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "out": str(self.out),
            "join": self.join.to_dict(),
            "splits": dict(self.splits),
            "unknown_ids_skipped": self.unknown_ids_skipped,
            "acknowledged": self.acknowledged,
        }


def write_dataset(
    impressions: list[Impression],
    catalogue: Catalogue,
    out: Path,
    dev_fraction: float = 0.2,
    dev_after: datetime | None = None,
) -> dict[str, int]:
    """Write OUT/train (and OUT/dev when it gets impressions) atomically: behaviors.tsv with
    impression ids 1..N in time order, and news.tsv with the whole catalogue (so the next
    model can still recommend articles no one was shown yet)."""
    train, dev = split_by_time(impressions, dev_fraction, dev_after)
    news = "".join(row + "\n" for row in catalogue.rows.values())
    counts: dict[str, int] = {}
    number = 0
    with StagedDir(out, owned=("train", "dev")) as stage:
        for name, part in (("train", train), ("dev", dev)):
            if not part:
                continue
            renumbered = []
            for imp in part:
                number += 1
                renumbered.append(
                    Impression(str(number), imp.user_id, imp.time, imp.history, imp.candidates, imp.labels)
                )
            split = stage.path / name
            split.mkdir()
            (split / "behaviors.tsv").write_text(behaviors_tsv(renumbered), encoding="utf-8")
            (split / "news.tsv").write_text(news, encoding="utf-8")
            counts[name] = len(part)
        stage.commit()
    return counts


def export(
    client: Any,
    stream: str,
    out: Path,
    news: Sequence[Path],
    *,
    group: str | None = None,
    consumer: str = "export",
    start: str = "-",
    end: str = "+",
    dev_fraction: float = 0.2,
    dev_after: datetime | None = None,
    skip_unknown: bool = False,
) -> ExportSummary:
    """Stream -> joined impressions -> MIND directory at `out`. With `group`, reads what the
    consumer group has not acknowledged and acknowledges it only after `out` is written
    (at-least-once: a failed export leaves the entries pending for the next one)."""
    catalogue = read_catalogue(news)
    if group is not None:
        rows = read_group(client, stream, group, consumer)
    else:
        rows = list(read_range(client, stream, start, end))
    impressions, stats = join(ev for _sid, ev in rows)
    impressions, skipped = resolve(impressions, catalogue, skip_unknown)
    if not impressions:
        raise InvalidInput(
            f"{stream}: no impressions to write ({stats.events} events read"
            f"{', consumer group ' + group if group else ''}); log shown_ids with LogFeedback"
        )
    counts = write_dataset(impressions, catalogue, out, dev_fraction, dev_after)
    acked = ack(client, stream, group, [sid for sid, _ in rows]) if group is not None else 0
    return ExportSummary(Path(out), stats, counts, skipped, acked)
