"""newsrec.data.events: joining feedback events into MIND impressions, resolving ids against
a catalogue, the time split, the written directory (checked by `validate_dataset`), and the
consumer-group export against a real redis-server (at-least-once: a failed export leaves
its entries pending for the next one)."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from newsrec.data import load_dataset
from newsrec.data.events import (
    FeedbackEvent,
    export,
    join,
    read_catalogue,
    resolve,
    split_by_time,
    write_dataset,
)
from newsrec.data.validate import validate_dataset
from newsrec.errors import DataError, InvalidInput

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "integration" / "services"))
from svc_helpers import start_redis  # noqa: E402

T0 = 1_764_000_000_000  # unix ms


def _ev(
    eid: str, rid: str, shown: tuple[str, ...] = (), clicked: tuple[str, ...] = (), t: int = 0, **kw: object
):  # type: ignore[no-untyped-def]
    fields: dict[str, object] = {
        "event_id": eid,
        "request_id": rid,
        "user_id": "U1",
        "variant": "a",
        "model_version": "v1",
        "time_ms": T0 + t,
        "served_ms": T0,
        "shown": shown,
        "clicked": clicked,
        "history": ("N9",) if shown else (),
    }
    return FeedbackEvent(**(fields | kw))  # type: ignore[arg-type]


def _catalogue(tmp_path: Path, ids: list[str]) -> Path:
    path = tmp_path / "catalogue.tsv"
    rows = [f"{n}\tnews\tsub\tTitle {n}\tAbstract {n}\thttps://x/{n}\t[]\t[]\n" for n in ids]
    path.write_text("".join(rows))
    return path


def test_fields_round_trip_and_bad_entries_name_the_field() -> None:
    ev = _ev("e1", "r1", ("N1", "N2"), ("N2",))
    raw = {k.encode(): v.encode() for k, v in ev.to_fields().items()}
    assert FeedbackEvent.from_fields(raw) == ev
    with pytest.raises(DataError, match=r"s 1-0: field 'shown'"):
        FeedbackEvent.from_fields(ev.to_fields() | {"shown": "N1 N2"}, "s 1-0")
    with pytest.raises(DataError, match="field 'time_ms' missing"):
        FeedbackEvent.from_fields({k: v for k, v in ev.to_fields().items() if k != "time_ms"})


def test_join_one_impression_per_list_with_later_clicks_and_replays() -> None:
    events = [
        _ev("e1", "r1", ("N1", "N2", "N3"), t=1000),
        _ev("e2", "r1", clicked=("N3",), t=5000),  # a later click-only event
        _ev("e1", "r1", ("N1", "N2", "N3"), t=1000),  # the same event again (a replay)
        _ev("e3", "r1", ("N3", "N4"), ("N4",), t=6000),  # more shown later: the union
        _ev("e4", "r2", clicked=("N7",), t=2000),  # clicks of a list never reported shown
        _ev("e5", "r3", ("N5",), ("N6",), t=500),  # a click outside the shown ids
    ]
    impressions, stats = join(events)
    assert [i.impression_id for i in impressions] == ["r3", "r1"]  # time order
    r1 = impressions[1]
    assert r1.candidates == ["N1", "N2", "N3", "N4"] and r1.labels == [0, 0, 1, 1]
    assert r1.time == datetime.fromtimestamp((T0 + 1000) / 1000, UTC).replace(tzinfo=None) and r1.history == [
        "N9"
    ]
    assert impressions[0].labels == [0]
    assert stats.duplicate_events == 1 and stats.impressions == 2 and stats.clicks == 2
    assert stats.clicks_without_impression == 1 and stats.clicks_not_shown == 1


def test_unknown_ids_fail_with_one_line_or_are_skipped(tmp_path: Path) -> None:
    cat = read_catalogue([_catalogue(tmp_path, ["N1", "N2", "N9"])])
    impressions, _ = join([_ev("e1", "r1", ("N1", "N2", "N3"), ("N3",)), _ev("e2", "r2", ("N4",))])
    with pytest.raises(InvalidInput) as err:
        resolve(impressions, cat, skip_unknown=False)
    message = str(err.value)
    assert "\n" not in message and message.startswith("2 news ids") and "N3, N4" in message
    kept, skipped = resolve(impressions, cat, skip_unknown=True)
    assert skipped == 2 and len(kept) == 1  # r2 had no known candidate left
    assert kept[0].candidates == ["N1", "N2"] and kept[0].labels == [0, 0]


def test_split_by_time() -> None:
    impressions, _ = join([_ev(f"e{i}", f"r{i}", ("N1",), t=i * 1000) for i in range(10)])
    train, dev = split_by_time(impressions, 0.2)
    assert len(train) == 8 and len(dev) == 2 and max(i.time for i in train) < min(i.time for i in dev)
    train, dev = split_by_time(impressions, 0.0, dev_after=impressions[7].time)
    assert [len(train), len(dev)] == [7, 3]
    with pytest.raises(InvalidInput, match="no train impressions"):
        split_by_time(impressions, 0.0, dev_after=impressions[0].time)


def test_written_dataset_validates_and_reads_back(tmp_path: Path) -> None:
    ids = [f"N{i}" for i in range(10)]
    cat = read_catalogue([_catalogue(tmp_path, ids)])
    events = [
        _ev(f"e{i}", f"r{i}", tuple(ids[i % 5 : i % 5 + 4]), (ids[i % 5],), t=i * 1000) for i in range(10)
    ]
    impressions, _ = join(events)
    out = tmp_path / "mind"
    assert write_dataset(impressions, cat, out, dev_fraction=0.3) == {"train": 7, "dev": 3}
    report = validate_dataset(out)
    assert report.usable, report.reason
    data = load_dataset(out)
    assert [i.impression_id for i in data["train"].impressions] == [str(n) for n in range(1, 8)]
    assert len(data["dev"].news) == 10  # the whole catalogue, in every split
    first = data["train"].impressions[0]
    assert first.candidates == ids[0:4] and first.labels == [1, 0, 0, 0] and first.history == ["N9"]


def test_consumer_group_export_is_at_least_once(tmp_path: Path) -> None:
    """A failed export acknowledges nothing; the next one reads the same entries, then
    acknowledges them, and a third finds nothing new."""
    import redis

    proc = start_redis()
    try:
        client = redis.Redis.from_url(proc.url)
        for i in range(4):
            client.xadd("fb", _ev(f"e{i}", f"r{i}", ("N1", "N2"), ("N2",), t=i).to_fields())  # type: ignore[arg-type]
        partial = _catalogue(tmp_path, ["N1", "N9"])  # N2 is missing: the export fails
        with pytest.raises(InvalidInput, match="not in the catalogue"):
            export(client, "fb", tmp_path / "a", [partial], group="g", dev_fraction=0)
        assert client.xpending("fb", "g")["pending"] == 4 and not (tmp_path / "a").exists()
        full = _catalogue(tmp_path, ["N1", "N2", "N9"])
        summary = export(client, "fb", tmp_path / "b", [full], group="g", dev_fraction=0)
        assert summary.join.impressions == 4 and summary.acknowledged == 4
        assert client.xpending("fb", "g")["pending"] == 0
        client.xadd("fb", _ev("e9", "r9", ("N1",), t=9).to_fields())  # type: ignore[arg-type]
        again = export(client, "fb", tmp_path / "c", [full], group="g", dev_fraction=0)
        assert again.join.events == 1 and again.splits == {"train": 1}
        with pytest.raises(InvalidInput, match="no impressions to write"):
            export(client, "fb", tmp_path / "d", [full], group="g")
        # range mode reads everything again, whatever the group acknowledged
        assert export(client, "fb", tmp_path / "e", [full], dev_fraction=0).join.events == 5
    finally:
        proc.kill()
