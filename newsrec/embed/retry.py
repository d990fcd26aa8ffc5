"""Retries with exponential backoff, full jitter and `Retry-After`.

Retryable: 429, 5xx, timeouts and connection errors. Any other 4xx is final: sending
the same request again cannot succeed and would only burn quota.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from newsrec.errors import NewsrecError, Unavailable

T = TypeVar("T")


class EmbeddingError(NewsrecError):
    """An embedding request failed for good (message never contains the API key)."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class TransientEmbeddingError(Unavailable):
    """A failure worth retrying; `retry_after` is the server's hint in seconds, if any."""

    def __init__(self, message: str, *, status: int | None = None, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after


def is_retryable_status(status: int) -> bool:
    return status == 429 or status >= 500


def parse_retry_after(headers: dict[str, str] | None) -> float | None:
    """Seconds from `retry-after-ms` or `retry-after` (seconds form); None when absent or an HTTP date."""
    if not headers:
        return None
    lowered = {k.lower(): v for k, v in headers.items()}
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        raw = lowered.get(name)
        if raw is None:
            continue
        try:
            value = float(raw) * scale
        except ValueError:
            continue  # an HTTP date: fall back to our own backoff
        if value >= 0:
            return value
    return None


@dataclass
class RetryStats:
    """Counters shared by the worker threads of one provider."""

    requests: int = 0
    retries: int = 0
    rate_limited: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, *, requests: int = 0, retries: int = 0, rate_limited: int = 0) -> None:
        with self._lock:
            self.requests += requests
            self.retries += retries
            self.rate_limited += rate_limited


@dataclass(frozen=True)
class RetryPolicy:
    max_retries: int = 6
    base: float = 0.5
    cap: float = 30.0
    max_retry_after: float = 300.0

    def delay(self, attempt: int, retry_after: float | None, rand: float) -> float:
        """Sleep before retry number `attempt` (0-based). A server hint wins over our backoff."""
        if retry_after is not None:
            return min(retry_after, self.max_retry_after)
        return rand * min(self.cap, self.base * (2**attempt))  # full jitter


def call_with_retries(
    fn: Callable[[], T],
    policy: RetryPolicy,
    stats: RetryStats | None = None,
    sleep: Callable[[float], None] = time.sleep,
    rand: Callable[[], float] = random.random,
) -> T:
    """Run `fn`, retrying `TransientEmbeddingError`; after the last retry the error is re-raised
    as a final `EmbeddingError` naming the number of attempts."""
    attempt = 0
    while True:
        if stats:
            stats.add(requests=1)
        try:
            return fn()
        except TransientEmbeddingError as exc:
            if stats and exc.status == 429:
                stats.add(rate_limited=1)
            if attempt >= policy.max_retries:
                raise EmbeddingError(
                    f"{exc} (gave up after {attempt + 1} attempts)", status=exc.status
                ) from exc
            if stats:
                stats.add(retries=1)
            sleep(policy.delay(attempt, exc.retry_after, rand()))
            attempt += 1
