"""Backoff, Retry-After and the token buckets, with fake clocks (no sleeping)."""

from __future__ import annotations

import pytest

from newsrec.embed.ratelimit import RateLimiter
from newsrec.embed.retry import (
    EmbeddingError,
    RetryPolicy,
    RetryStats,
    TransientEmbeddingError,
    call_with_retries,
    is_retryable_status,
    parse_retry_after,
)


def test_parse_retry_after_seconds_ms_and_dates() -> None:
    assert parse_retry_after({"Retry-After": "2"}) == 2.0
    assert parse_retry_after({"retry-after-ms": "250"}) == 0.25
    assert parse_retry_after({"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}) is None
    assert parse_retry_after({}) is None
    assert parse_retry_after(None) is None


def test_retryable_statuses() -> None:
    assert is_retryable_status(429) and is_retryable_status(500) and is_retryable_status(503)
    assert not any(is_retryable_status(s) for s in (400, 401, 403, 404, 413, 422))


def test_retry_after_wins_over_backoff_and_backoff_grows() -> None:
    policy = RetryPolicy(max_retries=5, base=0.5, cap=4.0)
    assert policy.delay(3, retry_after=7.0, rand=0.1) == 7.0
    assert [policy.delay(a, None, 1.0) for a in range(5)] == [0.5, 1.0, 2.0, 4.0, 4.0]
    assert policy.delay(2, None, 0.5) == 1.0  # full jitter scales the ceiling


def test_call_with_retries_sleeps_retry_after_then_succeeds() -> None:
    sleeps: list[float] = []
    outcomes: list[Exception | str] = [
        TransientEmbeddingError("429", status=429, retry_after=3.0),
        TransientEmbeddingError("503", status=503),
        "ok",
    ]

    def fn() -> str:
        item = outcomes.pop(0)
        if isinstance(item, Exception):
            raise item
        return item

    stats = RetryStats()
    out = call_with_retries(
        fn, RetryPolicy(max_retries=3, base=1.0), stats, sleep=sleeps.append, rand=lambda: 1.0
    )
    assert out == "ok"
    assert sleeps == [3.0, 2.0]  # server hint, then base * 2**1
    assert (stats.requests, stats.retries, stats.rate_limited) == (3, 2, 1)


def test_final_errors_are_not_retried_and_retries_give_up() -> None:
    calls = 0

    def bad_request() -> None:
        nonlocal calls
        calls += 1
        raise EmbeddingError("HTTP 400", status=400)

    with pytest.raises(EmbeddingError):
        call_with_retries(bad_request, RetryPolicy(max_retries=5), sleep=lambda s: None)
    assert calls == 1

    def always_500() -> None:
        raise TransientEmbeddingError("HTTP 500", status=500)

    with pytest.raises(EmbeddingError, match="gave up after 3 attempts") as info:
        call_with_retries(always_500, RetryPolicy(max_retries=2), sleep=lambda s: None)
    assert not isinstance(info.value, TransientEmbeddingError)


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_rpm_limit_holds_over_a_minute() -> None:
    clock = FakeClock()
    limiter = RateLimiter(rpm=60, tpm=None, clock=clock, sleep=clock.sleep)
    for _ in range(130):
        limiter.acquire(1)
    # 10 s of burst, then one per second: 130 requests need 120 s, never more than rpm in any minute
    assert clock.now == pytest.approx(120.0)


def test_tpm_limit_and_oversize_requests() -> None:
    clock = FakeClock()
    limiter = RateLimiter(rpm=None, tpm=6000, clock=clock, sleep=clock.sleep)  # 100 tokens/s, 1000 burst
    limiter.acquire(1000)
    assert clock.now == 0.0
    limiter.acquire(500)
    assert clock.now == pytest.approx(5.0)
    limiter.acquire(5000)  # larger than the bucket: waits for a full bucket, then goes
    assert clock.now == pytest.approx(15.0)
    limiter.acquire(100)  # the oversize request's debt is paid off first
    assert clock.now == pytest.approx(56.0)
