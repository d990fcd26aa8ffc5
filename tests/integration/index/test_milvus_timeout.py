"""A dead or frozen Milvus Lite fails every serving call within about `timeout_s`.

Milvus goes down for real: the Milvus Lite server process of the test's file is sent SIGKILL
(or SIGSTOP, a server that accepts connections but never answers). Without the timeouts,
pymilvus retried each call against the killed server for about 210 s before it raised.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from stack_probe import lite_pid
from test_milvus_lite import ALIAS, records

from newsrec.errors import Unavailable
from newsrec.index import NewsRecord
from newsrec.index.memory import MirroredIndex
from newsrec.index.milvus import MilvusIndex

TIMEOUT_S = 1.0
# A loaded 2-core machine: one run took over 3.5 s when two suites shared the cores.
# The point is seconds, not the 210 s of unbounded pymilvus retries.
SLACK_S = 5.0


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[MilvusIndex, list[NewsRecord]]]:
    """An index over a collection another client built (as on Kubernetes, where the pipeline
    builds it): pymilvus has not cached its schema, which `upsert` must look up first."""
    uri = str(tmp_path / "milvus.db")
    builder = MilvusIndex.from_uri(uri)
    recs = records(200, "v1")
    builder.build_version(ALIAS, "v1", recs)
    builder.close()  # drops pymilvus' connection and its schema cache; the Lite server stays
    # a long alias TTL: each call below reaches its own Milvus call, not only the alias lookup
    idx = MilvusIndex.from_uri(uri, timeout_s=TIMEOUT_S, alias_ttl_s=3600)
    assert idx.count(ALIAS) == 200
    yield idx, recs
    idx.close(stop_lite=True)  # reaps the killed process, or stops the revived one


def _fails_fast(call: Callable[[], Any], *, reason: str, method: str = r"\w+") -> float:
    """Seconds `call` took to raise `Unavailable` naming the pymilvus `method` and the gRPC
    `reason` (asserted within the budget)."""
    start = time.monotonic()
    with pytest.raises(Unavailable, match=rf"Milvus did not answer {method} on .*\({reason}") as err:
        call()
    took = time.monotonic() - start
    assert took < TIMEOUT_S + SLACK_S, f"{took:.1f} s: {err.value}"
    return took


def _serving_calls(idx: MilvusIndex, recs: list[NewsRecord]) -> dict[str, tuple[str, Callable[[], Any]]]:
    """name -> (the pymilvus method that fails, the call)."""
    new = NewsRecord("FRESH", recs[0].vector, "news", "s", 5_000, "v1")
    uncached = MilvusIndex.from_uri(idx.uri, client=idx.client, timeout_s=TIMEOUT_S)  # no alias cache
    return {
        "search": ("search", lambda: idx.search(ALIAS, recs[0].vector[None, :], 5)),
        "search_columns": ("search", lambda: idx.search_columns(ALIAS, recs[0].vector, 5)),
        # a fresh index checks its bookkeeping collection before it reads the alias row
        "resolve_alias": ("has_collection", lambda: uncached.resolve_alias(ALIAS)),
        "count": ("query", lambda: idx.count(ALIAS)),
        "fetch_all": ("query_iterator", lambda: idx.fetch_all(ALIAS)),
        # the first upsert into this collection: pymilvus looks up its schema first, which it
        # retried for 210 s whatever the call's own timeout and retry_times
        "upsert": ("upsert", lambda: idx.upsert(ALIAS, [new])),
        "build_version": ("get", lambda: idx.build_version(ALIAS, "v2", records(20, "v2"))),
    }


@pytest.mark.timeout(120)  # the old behaviour, 210 s per call, fails here instead of hanging
def test_killed_milvus_fails_each_call_within_the_timeout(
    served: tuple[MilvusIndex, list[NewsRecord]],
) -> None:
    idx, recs = served
    os.kill(lite_pid(Path(idx.uri)), signal.SIGKILL)
    took = {
        name: _fails_fast(call, reason="UNAVAILABLE", method=method)
        for name, (method, call) in _serving_calls(idx, recs).items()
    }
    # an unreachable server is retried until the budget is nearly spent, not given up at once
    assert min(took.values()) > TIMEOUT_S / 2, took


@pytest.mark.timeout(120)
def test_frozen_milvus_hits_the_deadline_and_recovers(served: tuple[MilvusIndex, list[NewsRecord]]) -> None:
    idx, recs = served
    pid = lite_pid(Path(idx.uri))
    os.kill(pid, signal.SIGSTOP)
    try:
        _fails_fast(lambda: idx.search(ALIAS, recs[3].vector[None, :], 5), reason="DEADLINE_EXCEEDED")
        _fails_fast(lambda: idx.count(ALIAS), reason="DEADLINE_EXCEEDED")
    finally:
        os.kill(pid, signal.SIGCONT)
    # a deadline is not a broken client: the same index answers once Milvus does
    assert idx.search(ALIAS, recs[3].vector[None, :], 1)[0][0].news_id == "N3"


@pytest.mark.timeout(120)
def test_mirror_over_a_killed_milvus_goes_stale_within_seconds(
    served: tuple[MilvusIndex, list[NewsRecord]],
) -> None:
    idx, recs = served
    # an alias TTL below the refresh (as the defaults, 1 s and 5 s): each check asks Milvus
    source = MilvusIndex.from_uri(idx.uri, client=idx.client, timeout_s=TIMEOUT_S, alias_ttl_s=0.05)
    mirror = MirroredIndex(source, refresh_s=0.1)
    q = recs[4].vector[None, :]
    before = [h.news_id for h in mirror.search(ALIAS, q, 5)[0]]
    assert mirror.staleness(ALIAS) is None
    os.kill(lite_pid(Path(idx.uri)), signal.SIGKILL)
    killed = time.monotonic()
    time.sleep(0.15)  # let the copy age past refresh_s
    while mirror.staleness(ALIAS) is None:  # each search of an old copy starts a background check
        assert [h.news_id for h in mirror.search(ALIAS, q, 5)[0]] == before  # served from memory
        assert time.monotonic() - killed < TIMEOUT_S + SLACK_S, "the mirror never noticed"
        time.sleep(0.05)
    health = mirror.health(ALIAS)
    assert health is not None and health.failing and "did not answer" in health.error
    # an upsert goes to Milvus first: it fails as fast, and the copy is left as it was
    late = NewsRecord("LATE", recs[0].vector, "news", "s", 1, "v1")
    _fails_fast(lambda: mirror.upsert(ALIAS, [late]), reason="UNAVAILABLE")
    assert mirror.count(ALIAS) == 200 and np.isfinite(mirror.search(ALIAS, q, 1)[0][0].score)
