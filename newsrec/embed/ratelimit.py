"""Requests-per-minute and tokens-per-minute limits as two token buckets.

Each bucket refills continuously at limit/60 per second and holds at most ten
seconds' worth, so a burst after an idle spell cannot overshoot the per-minute
limit by much. A single request larger than the bucket waits for a full bucket and
then goes through (otherwise it could never be sent).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

BURST_SECONDS = 10.0


class TokenBucket:
    def __init__(self, per_minute: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = per_minute / 60.0
        self.capacity = max(1.0, self.rate * BURST_SECONDS)
        self.level = self.capacity
        self._clock = clock
        self._stamp = clock()

    def _refill(self) -> None:
        now = self._clock()
        self.level = min(self.capacity, self.level + (now - self._stamp) * self.rate)
        self._stamp = now

    def wait_time(self, amount: float) -> float:
        """Seconds until `amount` can be taken (0 when it can be taken now)."""
        self._refill()
        need = min(amount, self.capacity)
        return 0.0 if self.level >= need else (need - self.level) / self.rate

    def take(self, amount: float) -> None:
        self._refill()
        self.level -= amount  # may go negative for oversize requests: later callers wait it off


class RateLimiter:
    """Blocks callers until both the request and the token budget allow one more request."""

    def __init__(
        self,
        rpm: float | None,
        tpm: float | None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.requests = TokenBucket(rpm, clock) if rpm else None
        self.tokens = TokenBucket(tpm, clock) if tpm else None
        self._sleep = sleep
        self._lock = threading.Lock()

    def acquire(self, tokens: int) -> float:
        """Wait for room for one request of `tokens` tokens; returns the seconds waited."""
        waited = 0.0
        # One lock for the whole wait keeps callers first-come first-served.
        with self._lock:
            while True:
                wait = 0.0
                if self.requests:
                    wait = max(wait, self.requests.wait_time(1))
                if self.tokens:
                    wait = max(wait, self.tokens.wait_time(tokens))
                if wait <= 0:
                    break
                self._sleep(wait)
                waited += wait
            if self.requests:
                self.requests.take(1)
            if self.tokens:
                self.tokens.take(tokens)
        return waited
