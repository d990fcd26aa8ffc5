"""LogFeedback: event checks (pure), and the loop against a real redis-server and the
fake-model stack over loopback gRPC: request ids, the stream, idempotency by event id,
refusals counted by reason and never written, Redis down -> UNAVAILABLE while Recommend
keeps answering."""

from __future__ import annotations

import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from svc_fakes import fake_variant

from newsrec.data.events import join, read_range
from services.config import FeedbackConfig, ServeConfig
from services.feedback import FeedbackRejected, Served, check_event, check_fields
from services.generated.newsrec.v1 import recommend_pb2, recommend_pb2_grpc
from services.stack import Stack, start_stack

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "integration" / "services"))
from svc_helpers import RedisProc, start_redis  # noqa: E402

CFG = FeedbackConfig.model_validate({})
SERVED = Served("U1", "a", "v1", 1_700_000_000_000, ("N1", "N2", "N3"), ("N9",))
NOW_MS = SERVED.served_ms + 5_000


def _event(**fields: object) -> recommend_pb2.LogFeedbackRequest:
    base: dict[str, object] = {
        "event_id": "e1",
        "request_id": "r1",
        "user_id": "U1",
        "shown_ids": ["N1", "N2"],
        "clicked_ids": ["N2"],
    }
    return recommend_pb2.LogFeedbackRequest(**(base | fields))  # type: ignore[arg-type]


def _at(ms: int) -> Timestamp:
    ts = Timestamp()
    ts.FromMilliseconds(ms)
    return ts


@pytest.mark.parametrize(
    ("fields", "reason", "field"),
    [
        ({"event_id": ""}, "missing_field", "event_id"),
        ({"request_id": ""}, "missing_field", "request_id"),
        ({"user_id": ""}, "missing_field", "user_id"),
        ({"shown_ids": [], "clicked_ids": []}, "missing_field", "shown_ids"),
        ({"user_id": "U\x001"}, "bad_id", "user_id"),
        ({"event_id": "e\n1"}, "bad_id", "event_id"),
        ({"shown_ids": ["N1", "N\t2"]}, "bad_id", "shown_ids[1]"),
        ({"shown_ids": ["N1 N2"]}, "bad_id", "shown_ids[0]"),
        ({"clicked_ids": ["x" * 300]}, "bad_id", "clicked_ids[0]"),
        ({"shown_ids": [f"N{i}" for i in range(501)]}, "too_many_ids", "shown_ids"),
        ({"shown_ids": ["N1", "N1"]}, "duplicate_id", "shown_ids[1]"),
    ],
)
def test_check_fields_names_the_field(fields: dict[str, object], reason: str, field: str) -> None:
    with pytest.raises(FeedbackRejected) as err:
        check_fields(_event(**fields), 500)
    assert err.value.reason == reason
    assert str(err.value).startswith(field), str(err.value)


@pytest.mark.parametrize(
    ("fields", "served", "reason", "field"),
    [
        ({}, None, "unknown_request", "request_id"),
        ({"user_id": "U2"}, SERVED, "wrong_user", "user_id"),
        ({"shown_ids": ["N1", "N7"]}, SERVED, "not_served", "shown_ids[1]"),
        ({"shown_ids": ["N1"], "clicked_ids": ["N2"]}, SERVED, "not_shown", "clicked_ids[0]"),
        ({"shown_ids": [], "clicked_ids": ["N7"]}, SERVED, "not_shown", "clicked_ids[0]"),
        ({"event_time": _at(SERVED.served_ms - 3_600_000)}, SERVED, "bad_time", "event_time"),
        ({"event_time": _at(NOW_MS + 3_600_000)}, SERVED, "bad_time", "event_time"),
    ],
)
def test_check_event_refuses(
    fields: dict[str, object], served: Served | None, reason: str, field: str
) -> None:
    with pytest.raises(FeedbackRejected) as err:
        check_event(_event(**fields), served, NOW_MS, CFG)
    assert err.value.reason == reason and str(err.value).startswith(field), str(err.value)


def test_check_event_accepts_and_keeps_the_served_facts() -> None:
    event = check_event(_event(event_time=_at(SERVED.served_ms + 1000)), SERVED, NOW_MS, CFG)
    assert (event.variant, event.model_version, event.served_ms) == ("a", "v1", SERVED.served_ms)
    assert event.time_ms == SERVED.served_ms + 1000 and event.history == ("N9",)
    click_only = check_event(_event(shown_ids=[], clicked_ids=["N3"]), SERVED, NOW_MS, CFG)
    assert click_only.time_ms == NOW_MS and click_only.history == () and click_only.clicked == ("N3",)


# --- the loop on a running gateway ---------------------------------------------------------


@dataclass
class Loop:
    stack: Stack
    redis: RedisProc
    stub: recommend_pb2_grpc.RecommendServiceStub

    def sample(self, name: str, **labels: str) -> float | None:
        """The sample's value; None when the series does not exist (not started at 0)."""
        return self.stack.registry.get_sample_value(name, labels)

    def xlen(self) -> int:
        import redis

        return int(redis.Redis.from_url(self.redis.url).xlen("newsrec:feedback"))


@pytest.fixture
def loop() -> Iterator[Loop]:
    redis_proc = start_redis()
    cfg = ServeConfig.model_validate(
        {
            "grpc_port": 0,
            "metrics_port": None,
            "host": "127.0.0.1",
            "gateway": {
                "timeouts": {"encode_user": 5, "retrieve": 5, "rank": 5},
                "feedback": {"redis_url": redis_proc.url, "retry_after_seconds": 0},
            },
        }
    )
    stack = start_stack(cfg, {"a": fake_variant("v1", 0, 50), "b": fake_variant("v2", 1, 50)})
    stack.wait_ready(30)
    channel = grpc.insecure_channel(f"127.0.0.1:{stack.ports['gateway']}")
    yield Loop(stack, redis_proc, recommend_pb2_grpc.RecommendServiceStub(channel))
    channel.close()
    stack.stop(0)
    redis_proc.kill()


def _recommend(
    loop: Loop, user: str = "U1", variant: str = "a", history: tuple[str, ...] = ("N1", "N2")
) -> recommend_pb2.RecommendResponse:
    got = loop.stub.Recommend(
        recommend_pb2.RecommendRequest(user_id=user, history_ids=history, k=5, forced_variant=variant),
        timeout=5,
    )
    assert len(got.request_id) == 32 and not got.degraded
    return got


def test_feedback_is_stored_once_per_event_id(loop: Loop) -> None:
    served = _recommend(loop)
    ids = [i.news_id for i in served.items]
    event = recommend_pb2.LogFeedbackRequest(
        event_id=uuid.uuid4().hex,
        request_id=served.request_id,
        user_id="U1",
        shown_ids=ids,
        clicked_ids=ids[1:2],
    )
    first = loop.stub.LogFeedback(event, timeout=5)
    assert not first.duplicate and first.variant == "a" and first.model_version == served.model_version
    again = loop.stub.LogFeedback(event, timeout=5)  # a client retry, or a replayed log
    assert again.duplicate and again.stream_id == first.stream_id
    assert loop.xlen() == 1
    assert loop.sample("newsrec_gateway_impressions_total", variant="a") == len(ids)
    assert loop.sample("newsrec_gateway_clicks_total", variant="a") == 1
    assert loop.sample("newsrec_gateway_impressions_total", variant="b") == 0  # exported at 0
    assert loop.sample("newsrec_gateway_feedback_events_total", variant="a", result="duplicate") == 1

    # a replay of the stream itself (entries read twice) still joins to one impression
    import redis

    rows = list(read_range(redis.Redis.from_url(loop.redis.url), "newsrec:feedback"))
    impressions, stats = join([ev for _sid, ev in rows + rows])
    assert len(impressions) == 1 and stats.duplicate_events == 1
    imp = impressions[0]
    assert imp.candidates == ids and imp.labels == [int(n == ids[1]) for n in ids]
    assert imp.history == ["N1", "N2"] and imp.user_id == "U1"


def test_bad_events_are_refused_counted_and_not_written(loop: Loop) -> None:
    served = _recommend(loop)
    ids = [i.news_id for i in served.items]
    cases = [  # the variant is known once the served list is found
        ({"request_id": "f" * 32}, "unknown_request", "request_id", "unknown"),
        ({"user_id": "U2"}, "wrong_user", "user_id", "a"),
        ({"clicked_ids": ["N299"] if "N299" not in ids else ["N298"]}, "not_shown", "clicked_ids[0]", "a"),
        ({"shown_ids": ids + ["N\x01"]}, "bad_id", "shown_ids[5]", "unknown"),
    ]
    for fields, reason, field, variant in cases:
        request = recommend_pb2.LogFeedbackRequest(
            **(
                {
                    "event_id": uuid.uuid4().hex,
                    "request_id": served.request_id,
                    "user_id": "U1",
                    "shown_ids": ids,
                }
                | fields
            )  # type: ignore[arg-type]
        )
        with pytest.raises(grpc.RpcError) as err:
            loop.stub.LogFeedback(request, timeout=5)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert err.value.details().startswith(field), err.value.details()
        assert loop.sample("newsrec_gateway_feedback_rejected_total", variant=variant, reason=reason) == 1
    assert loop.xlen() == 0
    assert loop.sample("newsrec_gateway_feedback_rejected_total", variant="b", reason="bad_time") == 0  # at 0


def test_redis_down_feedback_unavailable_recommend_unaffected(loop: Loop) -> None:
    served = _recommend(loop)
    # the record reached Redis (written off the response path)
    deadline = time.monotonic() + 5
    import redis

    client = redis.Redis.from_url(loop.redis.url)
    while client.get(f"newsrec:served:{served.request_id}") is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert 3500 < client.ttl(f"newsrec:served:{served.request_id}") <= 3600
    loop.redis.kill()
    event = recommend_pb2.LogFeedbackRequest(
        event_id="e-down", request_id=served.request_id, user_id="U1", shown_ids=[served.items[0].news_id]
    )
    with pytest.raises(grpc.RpcError) as err:
        loop.stub.LogFeedback(event, timeout=5)
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE and "redis" in err.value.details()
    t0 = time.perf_counter()
    for _ in range(5):
        again = _recommend(loop)  # still answered, not degraded, with a request id
    assert time.perf_counter() - t0 < 2.0
    deadline = time.monotonic() + 5
    while (
        loop.sample("newsrec_gateway_served_records_dropped_total", variant="a", reason="redis_error") or 0
    ) < 5:
        assert time.monotonic() < deadline, "dropped records not counted"
        time.sleep(0.02)
    assert again.items


def test_coverage_gauge_counts_distinct_served_items(loop: Loop) -> None:
    assert loop.sample("newsrec_gateway_served_distinct_items", variant="b") == 0  # exported at 0
    histories = [("N1", "N2"), ("N1", "N2"), ("N40", "N41"), ("N200",)]
    lists = [_recommend(loop, f"U{i}", history=h) for i, h in enumerate(histories)]
    deadline = time.monotonic() + 5  # every served item's age is observed by the writer
    while loop.sample("newsrec_gateway_served_age_seconds_count", variant="a") != 20:
        assert time.monotonic() < deadline, loop.sample(
            "newsrec_gateway_served_age_seconds_count", variant="a"
        )
        time.sleep(0.01)
    distinct = {item.news_id for got in lists for item in got.items}
    assert 5 < len(distinct) < 20  # two lists are the same, the others differ
    assert loop.sample("newsrec_gateway_served_distinct_items", variant="a") == len(distinct)


def test_stopping_the_gateway_writes_what_is_queued_and_ends_the_writer(loop: Loop) -> None:
    served = _recommend(loop)
    feedback = loop.stack.servers["gateway"].bindings[0].servicer.feedback
    writer = feedback.recorder._thread
    loop.stack.stop(0)
    writer.join(5)
    assert not writer.is_alive()
    import redis

    assert redis.Redis.from_url(loop.redis.url).exists(f"newsrec:served:{served.request_id}")
