"""Readers of MIND-format files: news.tsv, behaviors.tsv and the .vec embedding files.

The readers accept real MIND as it ships: CRLF or LF line ends, a UTF-8 BOM,
empty histories, duplicate ids inside a history (kept as-is, in order: models
dedupe if they want to), empty abstracts, `[]` or empty entity columns, quotes
inside titles (fields are split on tab, never csv-unquoted), and the test split's
impressions without `-label`.

A row that cannot be used is returned as a `BadRow(file, line, reason, detail)`
(1-based line) rather than raised or dropped; the first row with a given news or
impression id wins over later duplicates.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterator
from datetime import datetime
from functools import lru_cache
from pathlib import Path

import numpy as np

from newsrec.data.types import BEHAVIOR_COLUMNS, NEWS_COLUMNS, BadRow, Entity, Impression, NewsArticle
from newsrec.errors import DataError

# Stable reason codes of BadRow.reason (validate groups on them; tests and docs name them).
COLUMN_COUNT = "column_count"
EMPTY_ID = "empty_id"
DUPLICATE_ID = "duplicate_id"
BAD_JSON = "bad_json"
BAD_ENTITY = "bad_entity"
BAD_TIME = "bad_time"
BAD_LABEL = "bad_label"
EMPTY_IMPRESSIONS = "empty_impressions"
BAD_VECTOR = "bad_vector"
VECTOR_DIM = "vector_dim"
BAD_ENCODING = "bad_encoding"
BLANK_LINE = "blank_line"

REASONS = (
    COLUMN_COUNT,
    EMPTY_ID,
    DUPLICATE_ID,
    BAD_JSON,
    BAD_ENTITY,
    BAD_TIME,
    BAD_LABEL,
    EMPTY_IMPRESSIONS,
    BAD_VECTOR,
    VECTOR_DIM,
    BAD_ENCODING,
    BLANK_LINE,
)

_LABELED_TOKEN = re.compile(r"\S+-[01]")
_LABEL_AT_END = re.compile(r"-([01])(?= |$)")
_DIGITS = bytes.maketrans(b"01", b"\x00\x01")
_intern = sys.intern


def _lines(path: Path, bad: list[BadRow]) -> Iterator[tuple[int, str]]:
    """(1-based line number, text without line end) of every line of `path`, streamed.

    Lines that are not UTF-8 become `bad_encoding` rows; a blank line inside the
    file becomes `blank_line` (the final newline does not make one).
    """
    try:
        f = path.open("rb")
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise DataError(f"{path}: is a directory, expected a file") from None
    name = str(path)
    with f:
        # Binary lines decoded one by one, so a bad byte costs one row, not the file.
        for i, raw in enumerate(f, start=1):
            if i == 1 and raw.startswith(b"\xef\xbb\xbf"):
                raw = raw[3:]
            try:
                line = raw.decode("utf-8").rstrip("\r\n")
            except UnicodeDecodeError as exc:
                bad.append(BadRow(name, i, BAD_ENCODING, str(exc)))
                continue
            if not line.strip():
                bad.append(BadRow(name, i, BLANK_LINE))
                continue
            yield i, line


def _entities(text: str) -> list[Entity]:
    """Parse an entity column; raises ValueError (bad JSON) or TypeError/KeyError (bad shape)."""
    if not text or text == "[]":
        return []
    items = json.loads(text)
    if not isinstance(items, list):
        raise TypeError(f"expected a JSON list, got {type(items).__name__}")
    out = []
    for item in items:
        if not isinstance(item, dict):
            raise TypeError(f"expected an object, got {type(item).__name__}")
        wid = item["WikidataId"]
        if not isinstance(wid, str) or not wid:
            raise TypeError("WikidataId must be a non-empty string")
        out.append(
            Entity(
                wikidata_id=_intern(wid),
                label=str(item.get("Label", "")),
                type=str(item.get("Type", "")),
                confidence=float(item.get("Confidence", 1.0)),
                occurrence_offsets=tuple(int(x) for x in item.get("OccurrenceOffsets", ())),
                surface_forms=tuple(str(x) for x in item.get("SurfaceForms", ())),
            )
        )
    return out


def read_news(
    path: str | Path, entity_cache: dict[str, list[Entity]] | None = None
) -> tuple[list[NewsArticle], list[BadRow]]:
    """Read a MIND news.tsv into articles (file order) and bad rows.

    `entity_cache` (raw column text -> parsed entities) can be shared between the
    news.tsv files of one dataset: MIND's train and dev news overlap, and parsing the
    entity JSON is most of the reading time.
    """
    cache: dict[str, list[Entity]] = {} if entity_cache is None else entity_cache
    path = Path(path)
    name = str(path)
    bad: list[BadRow] = []
    news: list[NewsArticle] = []
    seen: dict[str, int] = {}
    ncols = len(NEWS_COLUMNS)
    for lineno, line in _lines(path, bad):
        parts = line.split("\t")
        if len(parts) != ncols:
            bad.append(BadRow(name, lineno, COLUMN_COUNT, f"expected {ncols} columns, got {len(parts)}"))
            continue
        news_id = parts[0].strip()
        if not news_id:
            bad.append(BadRow(name, lineno, EMPTY_ID, "news_id is empty"))
            continue
        if news_id in seen:
            bad.append(BadRow(name, lineno, DUPLICATE_ID, f"{news_id} first seen on line {seen[news_id]}"))
            continue
        ents: list[list[Entity]] = []
        for col in (6, 7):
            text = parts[col]
            cached = cache.get(text)
            if cached is not None:
                ents.append(list(cached))  # Entity is frozen: sharing the items is safe
                continue
            try:
                parsed = _entities(text)
                cache[text] = parsed
                ents.append(list(parsed))
            except json.JSONDecodeError as exc:
                bad.append(BadRow(name, lineno, BAD_JSON, f"{NEWS_COLUMNS[col]}: {exc}"))
                break
            except (TypeError, KeyError, ValueError) as exc:
                bad.append(BadRow(name, lineno, BAD_ENTITY, f"{NEWS_COLUMNS[col]}: {exc!r}"))
                break
        if len(ents) != 2:
            continue
        seen[news_id] = lineno
        news.append(
            NewsArticle(
                news_id=_intern(news_id),
                category=_intern(parts[1]),
                subcategory=_intern(parts[2]),
                title=parts[3],
                abstract=parts[4],
                url=parts[5],
                title_entities=ents[0],
                abstract_entities=ents[1],
            )
        )
    return news, bad


@lru_cache(maxsize=1 << 16)
def parse_time(text: str) -> datetime:
    """Parse a MIND time (`11/15/2019 8:55:22 AM`); raises ValueError when it is not one.

    Hand-split rather than `strptime`, which is ~5x slower on 150k rows.
    """
    try:
        date, clock, ampm = text.split(" ")
        month, day, year = date.split("/")
        hour_s, minute, second = clock.split(":")
        hour = int(hour_s)
    except ValueError:
        raise ValueError(f"not a MIND time (m/d/yyyy h:mm:ss AM|PM): {text!r}") from None
    if ampm not in ("AM", "PM") or not 1 <= hour <= 12 or len(year) != 4:
        raise ValueError(f"not a MIND time (m/d/yyyy h:mm:ss AM|PM): {text!r}")
    hour = hour % 12 + (12 if ampm == "PM" else 0)
    return datetime(int(year), int(month), int(day), hour, int(minute), int(second))


def format_time(t: datetime) -> str:
    """Format a time the way MIND writes it (no zero padding of month, day, hour)."""
    hour = t.hour % 12 or 12
    ampm = "PM" if t.hour >= 12 else "AM"
    return f"{t.month}/{t.day}/{t.year} {hour}:{t.minute:02d}:{t.second:02d} {ampm}"


def _candidates(field: str) -> tuple[list[str], list[int]]:
    """Split an impressions field into ids and labels; raises ValueError on a malformed token."""
    # Fast path, all in C: one `-0`/`-1` before each space and at the end, no other
    # hyphen, no empty id. Anything else takes the careful per-token path below.
    labs = _LABEL_AT_END.findall(field)
    ids = field.replace("-0", "").replace("-1", "").split(" ")
    if labs and len(labs) == len(ids) == field.count("-") and "" not in ids:
        return list(map(_intern, ids)), list("".join(labs).encode().translate(_DIGITS))
    ids, labels = [], []
    toks = field.split()
    for tok in toks:
        if _LABELED_TOKEN.fullmatch(tok):
            ids.append(_intern(tok[:-2]))
            labels.append(int(tok[-1]))
        elif "-" in tok:  # a label that is not 0/1
            raise ValueError(f"malformed candidate {tok!r} (expected NEWSID-0, NEWSID-1 or NEWSID)")
        else:
            ids.append(_intern(tok))
    if labels and len(labels) != len(ids):
        raise ValueError("some candidates have a -label and some do not")
    return ids, labels


def read_behaviors(path: str | Path) -> tuple[list[Impression], list[BadRow]]:
    """Read a MIND behaviors.tsv into impressions (file order) and bad rows.

    Rows of the test split (candidates without `-label`) get empty `labels`.
    """
    path = Path(path)
    name = str(path)
    bad: list[BadRow] = []
    out: list[Impression] = []
    seen: dict[str, int] = {}
    ncols = len(BEHAVIOR_COLUMNS)
    # MIND repeats a user's history on each of the user's impressions: parse each once.
    histories: dict[str, list[str]] = {}
    for lineno, line in _lines(path, bad):
        parts = line.split("\t")
        if len(parts) != ncols:
            bad.append(BadRow(name, lineno, COLUMN_COUNT, f"expected {ncols} columns, got {len(parts)}"))
            continue
        imp_id, user_id, time_s, hist_s, imp_s = parts
        if not imp_id or not user_id:
            which = "impression_id" if not imp_id else "user_id"
            bad.append(BadRow(name, lineno, EMPTY_ID, f"{which} is empty"))
            continue
        if imp_id in seen:
            bad.append(BadRow(name, lineno, DUPLICATE_ID, f"{imp_id} first seen on line {seen[imp_id]}"))
            continue
        try:
            t = parse_time(time_s)
        except ValueError as exc:
            bad.append(BadRow(name, lineno, BAD_TIME, str(exc)))
            continue
        try:
            cands, labels = _candidates(imp_s)
        except ValueError as exc:
            bad.append(BadRow(name, lineno, BAD_LABEL, str(exc)))
            continue
        if not cands:
            bad.append(BadRow(name, lineno, EMPTY_IMPRESSIONS, "no candidates"))
            continue
        seen[imp_id] = lineno
        hist = histories.get(hist_s)
        if hist is None:
            hist = histories[hist_s] = list(map(_intern, hist_s.split()))
        out.append(Impression(imp_id, _intern(user_id), t, hist.copy(), cands, labels))
    return out, bad


def read_vectors(path: str | Path) -> tuple[dict[str, np.ndarray], list[BadRow]]:
    """Read entity_embedding.vec / relation_embedding.vec: an id then floats per line.

    Fields are split on any whitespace, so MIND's trailing tab is harmless. The
    dimension is that of the first good row; rows of another length are `vector_dim`.
    """
    path = Path(path)
    name = str(path)
    bad: list[BadRow] = []
    out: dict[str, np.ndarray] = {}
    first: dict[str, int] = {}
    dim = 0
    for lineno, line in _lines(path, bad):
        parts = line.split()
        key = parts[0]
        try:
            vec = np.array(parts[1:], dtype=np.float32)
        except ValueError as exc:
            bad.append(BadRow(name, lineno, BAD_VECTOR, str(exc)))
            continue
        if vec.size == 0 or not np.isfinite(vec).all():
            bad.append(BadRow(name, lineno, BAD_VECTOR, "no values" if vec.size == 0 else "non-finite value"))
            continue
        if dim == 0:
            dim = vec.size
        elif vec.size != dim:
            bad.append(BadRow(name, lineno, VECTOR_DIM, f"expected {dim} values, got {vec.size}"))
            continue
        if key in first:
            bad.append(BadRow(name, lineno, DUPLICATE_ID, f"{key} first seen on line {first[key]}"))
            continue
        first[key] = lineno
        out[_intern(key)] = vec
    return out, bad
