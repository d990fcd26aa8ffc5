"""RedisVectorCache against a real redis-server that we start and kill."""

from __future__ import annotations

import time

import numpy as np
import pytest
from svc_helpers import RedisProc

from newsrec.errors import Unavailable
from services.cache import RedisVectorCache, redis_client


def test_roundtrip_ttl_and_failure(redis_proc: RedisProc) -> None:
    client = redis_client(redis_proc.url, timeout=0.05)
    cache = RedisVectorCache(client, ttl_seconds=30, prefix="t:", retry_after=0.5)
    vec = np.arange(8, dtype=np.float32)
    assert cache.get("k") is None
    cache.set("k", vec)
    np.testing.assert_array_equal(cache.get("k"), vec)
    assert 0 < client.ttl("t:k") <= 30

    redis_proc.kill()
    t0 = time.perf_counter()
    with pytest.raises(Unavailable, match="redis"):
        cache.get("k")
    # after one failure the cache is skipped without touching the network
    with pytest.raises(Unavailable, match="recent failure"):
        cache.set("k", vec)
    assert time.perf_counter() - t0 < 0.5
