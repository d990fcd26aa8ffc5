"""User-vector caches: Redis (shared, TTL) or an in-process LRU (embedded default).

Keys hold the model version, the user and a hash of the history, so a new model or a
new click never serves a stale vector. A failing Redis raises `Unavailable`; the user
encoder then computes without the cache and says so.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np

from newsrec.errors import Unavailable


def cache_key(model_version: str, user_id: str, history: Sequence[str]) -> str:
    """`<version>:<user>:<sha256(history)[:16]>`; history order matters (most recent last)."""
    digest = hashlib.sha256("\x1f".join(history).encode()).hexdigest()[:16]
    return f"{model_version}:{user_id}:{digest}"


class VectorCache(Protocol):
    kind: str

    def get(self, key: str) -> np.ndarray | None: ...

    def set(self, key: str, vector: np.ndarray) -> None: ...


class LruVectorCache:
    """Thread-safe in-process LRU with a TTL."""

    kind = "lru"

    def __init__(self, max_size: int = 100_000, ttl_seconds: float = 3600.0) -> None:
        self._data: OrderedDict[str, tuple[float, np.ndarray]] = OrderedDict()
        self._max = max_size
        self._ttl = ttl_seconds
        self._lock = threading.Lock()

    def get(self, key: str) -> np.ndarray | None:
        with self._lock:
            item = self._data.get(key)
            if item is None:
                return None
            if item[0] < time.monotonic():
                del self._data[key]
                return None
            self._data.move_to_end(key)
            return item[1]

    def set(self, key: str, vector: np.ndarray) -> None:
        with self._lock:
            self._data[key] = (time.monotonic() + self._ttl, vector)
            self._data.move_to_end(key)
            while len(self._data) > self._max:
                self._data.popitem(last=False)


class RedisVectorCache:
    """Float32 bytes in Redis with a TTL. After a failure Redis is skipped for
    `retry_after` seconds, so a dead Redis costs one timeout, not one per request."""

    kind = "redis"

    def __init__(self, client: Any, ttl_seconds: int, prefix: str = "newsrec:uv:", retry_after: float = 1.0):
        self._client = client
        self._ttl = ttl_seconds
        self._prefix = prefix
        self._retry_after = retry_after
        self._down_until = 0.0

    def _guard(self) -> None:
        if time.monotonic() < self._down_until:
            raise Unavailable("redis cache unavailable (recent failure; retrying shortly)")

    def _failed(self, exc: Exception) -> Unavailable:
        self._down_until = time.monotonic() + self._retry_after
        return Unavailable(f"redis cache unavailable: {type(exc).__name__}: {exc}")

    def get(self, key: str) -> np.ndarray | None:
        self._guard()
        try:
            raw = self._client.get(self._prefix + key)
        except Exception as exc:  # redis.RedisError and socket errors alike
            raise self._failed(exc) from exc
        if raw is None:
            return None
        return np.frombuffer(raw, dtype=np.float32)

    def set(self, key: str, vector: np.ndarray) -> None:
        self._guard()
        try:
            self._client.set(self._prefix + key, np.asarray(vector, dtype=np.float32).tobytes(), ex=self._ttl)
        except Exception as exc:
            raise self._failed(exc) from exc


def redis_client(url: str, timeout: float) -> Any:
    """A Redis client with short timeouts and no retries: the cache is an optimisation."""
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    return redis.Redis.from_url(
        url, socket_timeout=timeout, socket_connect_timeout=timeout, retry=Retry(NoBackoff(), 0)
    )
