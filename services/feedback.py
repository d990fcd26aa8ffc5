"""The gateway's feedback loop: what it served, and the impressions and clicks that come back.

`ServedRecorder` keeps each Recommend answer (user, variant, model version, served ids,
the history's tail) under a fresh request id in Redis with a TTL. Recording costs the
response path one dict insert: a background thread writes the records in pipelined
batches, and a record not yet written is answered from memory. A full queue or a failing
Redis drops records (counted); Recommend itself never waits for Redis.

`FeedbackLog.append` (LogFeedback) checks an event against that record, refuses a bad one
with INVALID_ARGUMENT naming the field (counted by reason, never written), and appends a
good one to a Redis Stream: one Lua script sets the event id's dedup key and XADDs (MAXLEN
~) atomically, so a retried or replayed event id is stored once. Redis down: UNAVAILABLE,
so the client retries with the same event id (at-least-once without duplicates) instead of
losing the event to an "accepted" that was never stored.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from newsrec.data.events import FeedbackEvent
from newsrec.errors import InvalidInput, Unavailable
from services.config import FeedbackConfig, ServeConfig
from services.generated.newsrec.v1 import recommend_pb2
from services.metrics import UNKNOWN_VARIANT, GatewayMetrics
from services.validation import MAX_ID_LEN, check_key

log = logging.getLogger("services.feedback")
WRITE_BATCH = 256
BATCH_WAIT_SECONDS = 0.002

# KEYS: dedup key, stream. ARGV: dedup ttl, maxlen, then the entry's field/value pairs.
# Returns {1, stream id} when written, {0, stream id of the first copy} for a known event id.
_APPEND_LUA = """
local known = redis.call('GET', KEYS[1])
if known then return {0, known} end
local id = redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], '*', unpack(ARGV, 3))
redis.call('SET', KEYS[1], id, 'EX', ARGV[1])
return {1, id}
"""


@dataclass(frozen=True, slots=True)
class Served:
    """What the gateway answered under one request id."""

    user_id: str
    variant: str
    model_version: str
    served_ms: int
    news_ids: tuple[str, ...]
    history: tuple[str, ...]

    def to_json(self) -> str:
        return json.dumps(
            [self.user_id, self.variant, self.model_version, self.served_ms, self.news_ids, self.history]
        )

    @classmethod
    def from_json(cls, raw: bytes | str) -> Served:
        user, variant, version, served_ms, ids, history = json.loads(raw)
        return cls(user, variant, version, int(served_ms), tuple(ids), tuple(history))


class FeedbackRejected(InvalidInput):
    """A bad LogFeedback event (INVALID_ARGUMENT); `reason` is its metrics label."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class ServedRecorder:
    """Served lists -> Redis (`SET prefix+request_id json EX ttl`), off the response path."""

    def __init__(self, client: Any, cfg: FeedbackConfig, metrics: GatewayMetrics) -> None:
        self._client = client
        self._cfg = cfg
        self._metrics = metrics
        # request id -> (user, variant, version, served_ms, items, history tail, published)
        self._pending: dict[str, tuple[Any, ...]] = {}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._closed = False
        self._down_until = 0.0
        # Coverage: distinct news ids served per variant in the current window (writer thread only).
        self._window_start = time.monotonic()
        self._distinct: dict[str, set[str]] = {}
        self._closed_once = False
        self._thread = threading.Thread(target=self._run, name="served-writer", daemon=True)
        self._thread.start()

    def record(
        self,
        user_id: str,
        variant: str,
        model_version: str,
        items: Sequence[recommend_pb2.RecommendedItem],
        history: Sequence[str],
        published: Any = None,
    ) -> str:
        """A new request id for this answer ("" when the queue is full: no feedback for it).
        `published` (news id -> unix seconds, or a RetrieveResponse) feeds the age histogram."""
        request_id = os.urandom(16).hex()
        limit = self._cfg.history_limit
        entry = (
            user_id,
            variant,
            model_version,
            time.time(),
            items,
            history[-limit:] if limit else (),
            published,
        )
        with self._lock:
            if len(self._pending) >= self._cfg.queue_size:
                full = True
            else:
                full = False
                self._pending[request_id] = entry
        if full:
            self._metrics.served_dropped.labels(variant=variant, reason="queue_full").inc()
            return ""
        if not self._wake.is_set():  # the writer is waiting; a set event is already seen
            self._wake.set()
        return request_id

    def get(self, request_id: str) -> Served | None:
        """The record of `request_id` (still queued, or in Redis), None when unknown or expired.
        Raises Unavailable when Redis cannot be read."""
        with self._lock:
            entry = self._pending.get(request_id)
        if entry is not None:
            return _served(entry)
        try:
            raw = self._client.get(self._cfg.served_prefix + request_id)
        except Exception as exc:  # redis.RedisError and socket errors alike
            raise Unavailable(f"feedback: redis unavailable: {type(exc).__name__}: {exc}") from exc
        return None if raw is None else Served.from_json(raw)

    def flush(self) -> int:
        """Write what is queued (pipelined, `WRITE_BATCH` per round trip); returns records written."""
        written = 0
        while True:
            with self._lock:
                batch = list(self._pending.items())[:WRITE_BATCH]
            if not batch:
                return written
            written += self._write(batch)

    def _write(self, batch: list[tuple[str, tuple[Any, ...]]]) -> int:
        served = [(rid, _served(entry)) for rid, entry in batch]
        ok = time.monotonic() >= self._down_until
        if ok:
            try:
                pipe = self._client.pipeline(transaction=False)
                for rid, record in served:
                    pipe.set(self._cfg.served_prefix + rid, record.to_json(), ex=self._cfg.served_ttl_seconds)
                pipe.execute()
            except Exception as exc:
                ok = False
                self._down_until = time.monotonic() + self._cfg.retry_after_seconds
                log.warning("served records not stored", extra={"error": f"{type(exc).__name__}: {exc}"})
        if not ok:
            for _rid, record in served:
                self._metrics.served_dropped.labels(variant=record.variant, reason="redis_error").inc()
        with self._lock:
            for rid, _entry in batch:
                self._pending.pop(rid, None)
        for (_rid, entry), (_rid2, record) in zip(batch, served, strict=True):
            self._observe_age(record, entry[6])
            self._distinct.setdefault(record.variant, set()).update(record.news_ids)
        self._coverage()
        return len(batch) if ok else 0

    def _observe_age(self, record: Served, published: Any) -> None:
        if published is None:
            return
        if not isinstance(published, dict):  # a RetrieveResponse: parallel columns
            published = dict(zip(published.news_ids, published.published_at, strict=False))
        now = record.served_ms / 1000
        histogram = self._metrics.served_age.labels(variant=record.variant)
        for news_id in record.news_ids:
            at = published.get(news_id, 0)
            if at > 0:
                histogram.observe(max(0.0, now - at))

    def _coverage(self) -> None:
        """`newsrec_gateway_served_distinct_items{variant}`: distinct items served in the
        current window, then, once it closes, that whole window's count until the next."""
        closed = time.monotonic() - self._window_start >= self._cfg.coverage_window_seconds
        for variant, ids in self._distinct.items():
            gauge = self._metrics.served_distinct.labels(variant=variant)
            if closed or not self._closed_once:
                gauge.set(len(ids))
        if closed:
            self._closed_once = True
            self._window_start = time.monotonic()
            self._distinct = {}

    def _run(self) -> None:
        # Until closed and drained: calls finishing during the stop's grace period still record.
        while not self._closed or self._pending:
            if self._wake.wait(1.0):
                time.sleep(BATCH_WAIT_SECONDS)  # let a burst gather into one pipelined write
            self._wake.clear()
            try:
                self.flush()
            except Exception:  # never let the writer die: the next wake retries
                log.exception("served-record writer failed")

    def close(self) -> None:
        """Write what is queued and end the writer thread (the server is stopping)."""
        self._closed = True
        self._wake.set()


def _served(entry: tuple[Any, ...]) -> Served:
    user, variant, version, at, items, history, _published = entry
    return Served(user, variant, version, int(at * 1000), tuple(i.news_id for i in items), tuple(history))


def _key(value: str, field: str) -> None:
    if not value:
        raise FeedbackRejected("missing_field", f"{field}: must not be empty")
    try:
        check_key(value, field)
    except InvalidInput as exc:
        raise FeedbackRejected("bad_id", str(exc)) from None


def _news_ids(ids: Sequence[str], field: str, limit: int) -> tuple[str, ...]:
    """The ids, checked: at most `limit`, each 1..MAX_ID_LEN characters, no control
    character or whitespace (they end up space-separated in behaviors.tsv), no repeats."""
    if len(ids) > limit:
        raise FeedbackRejected("too_many_ids", f"{field}: at most {limit} ids, got {len(ids)}")
    out = tuple(ids)
    seen: set[str] = set()
    for i, news_id in enumerate(out):
        if not news_id or len(news_id) > MAX_ID_LEN or news_id.split() != [news_id]:
            raise FeedbackRejected(
                "bad_id", f"{field}[{i}]: news ids are 1..{MAX_ID_LEN} characters without whitespace"
            )
        try:
            check_key(news_id, f"{field}[{i}]")
        except InvalidInput as exc:
            raise FeedbackRejected("bad_id", str(exc)) from None
        if news_id in seen:
            raise FeedbackRejected("duplicate_id", f"{field}[{i}]: {news_id} appears twice")
        seen.add(news_id)
    return out


def check_event(
    request: recommend_pb2.LogFeedbackRequest, served: Served | None, now_ms: int, cfg: FeedbackConfig
) -> FeedbackEvent:
    """The event to store, or FeedbackRejected naming the field. `served` is the record of
    `request.request_id` (None: unknown or expired); call `check_fields` first."""
    if served is None:
        raise FeedbackRejected(
            "unknown_request",
            f"request_id: {request.request_id!r} is unknown or expired (a list takes feedback "
            f"for {cfg.served_ttl_seconds} s after it is served)",
        )
    if request.user_id != served.user_id:
        raise FeedbackRejected("wrong_user", "user_id: not the user this request_id was served to")
    shown, clicked = tuple(request.shown_ids), tuple(request.clicked_ids)
    served_ids = set(served.news_ids)
    for i, news_id in enumerate(shown):
        if news_id not in served_ids:
            raise FeedbackRejected("not_served", f"shown_ids[{i}]: {news_id} was not served under request_id")
    allowed, what = (set(shown), "shown_ids") if shown else (served_ids, "the items served under request_id")
    for i, news_id in enumerate(clicked):
        if news_id not in allowed:
            raise FeedbackRejected("not_shown", f"clicked_ids[{i}]: {news_id} is not among {what}")
    at_ms = now_ms
    if request.HasField("event_time"):
        at_ms = request.event_time.seconds * 1000 + request.event_time.nanos // 1_000_000
        skew = int(cfg.max_clock_skew_seconds * 1000)
        if not served.served_ms - skew <= at_ms <= now_ms + skew:
            raise FeedbackRejected(
                "bad_time", "event_time: before the list was served, or in the future (clock skew?)"
            )
    return FeedbackEvent(
        event_id=request.event_id,
        request_id=request.request_id,
        user_id=request.user_id,
        variant=served.variant,
        model_version=served.model_version,
        time_ms=at_ms,
        served_ms=served.served_ms,
        shown=shown,
        clicked=clicked,
        history=served.history if shown else (),
    )


def check_fields(request: recommend_pb2.LogFeedbackRequest, limit: int) -> None:
    """The checks that need no record: ids present and well-formed, id lists bounded."""
    _key(request.event_id, "event_id")
    _key(request.request_id, "request_id")
    _key(request.user_id, "user_id")
    _news_ids(request.shown_ids, "shown_ids", limit)
    _news_ids(request.clicked_ids, "clicked_ids", limit)
    if not request.shown_ids and not request.clicked_ids:
        raise FeedbackRejected("missing_field", "shown_ids, clicked_ids: an event needs at least one of them")


class FeedbackLog:
    """LogFeedback: check an event, then append it once to the Redis Stream."""

    def __init__(self, client: Any, cfg: FeedbackConfig, recorder: ServedRecorder, metrics: GatewayMetrics):
        self._cfg = cfg
        self._recorder = recorder
        self._metrics = metrics
        self._append = client.register_script(_APPEND_LUA)

    def append(
        self, request: recommend_pb2.LogFeedbackRequest, max_ids: int
    ) -> recommend_pb2.LogFeedbackResponse:
        served = None
        try:
            check_fields(request, max_ids)
            served = self._recorder.get(request.request_id)
            event = check_event(request, served, int(time.time() * 1000), self._cfg)
        except FeedbackRejected as exc:
            variant = served.variant if served is not None else UNKNOWN_VARIANT
            self._metrics.feedback_rejected.labels(variant=variant, reason=exc.reason).inc()
            raise
        args: list[Any] = [self._cfg.dedup_ttl_seconds, self._cfg.stream_maxlen]
        for name, value in event.to_fields().items():
            args += [name, value]
        try:
            written, stream_id = self._append(
                keys=[self._cfg.dedup_prefix + event.event_id, self._cfg.stream], args=args
            )
        except Exception as exc:
            raise Unavailable(
                f"feedback: redis unavailable, event not stored: {type(exc).__name__}: {exc}"
            ) from exc
        if written:
            self._metrics.feedback_events.labels(variant=event.variant, result="accepted").inc()
            self._metrics.impressions.labels(variant=event.variant).inc(len(event.shown))
            self._metrics.clicks.labels(variant=event.variant).inc(len(event.clicked))
        else:
            self._metrics.feedback_events.labels(variant=event.variant, result="duplicate").inc()
        return recommend_pb2.LogFeedbackResponse(
            event_id=event.event_id,
            duplicate=not written,
            stream_id=stream_id.decode() if isinstance(stream_id, bytes) else str(stream_id),
            variant=event.variant,
            model_version=event.model_version,
        )


@dataclass
class Feedback:
    """The gateway's two halves of the loop, sharing one Redis client."""

    recorder: ServedRecorder
    log: FeedbackLog

    def close(self) -> None:
        self.recorder.close()


def feedback_for(config: ServeConfig, metrics: GatewayMetrics, client: Any = None) -> Feedback | None:
    """The feedback loop of a gateway, or None when off or no Redis URL is configured
    (`gateway.feedback.redis_url`, else `cache.redis_url`)."""
    cfg = config.gateway.feedback
    url = cfg.redis_url or config.cache.redis_url
    if not cfg.enabled or (client is None and not url):
        return None
    if client is None:
        from services.cache import redis_client

        client = redis_client(str(url), cfg.timeout_seconds)
    recorder = ServedRecorder(client, cfg, metrics)
    return Feedback(recorder, FeedbackLog(client, cfg, recorder, metrics))
