"""MirroredIndex reports when its source stops answering (failing or hung checks) and when it is back.

The source is a dict stand-in for the three Milvus calls the mirror makes; the same states
against a real Milvus Lite are in tests/integration/services/test_svc_milvus_down.py.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any, cast

import numpy as np
import pytest

from newsrec.index import NewsRecord
from newsrec.index.memory import MirroredIndex
from newsrec.index.milvus import MilvusIndex

ALIAS = "news_m"


def _recs(n: int = 10, dim: int = 8) -> list[NewsRecord]:
    v = np.random.default_rng(5).normal(size=(n, dim)).astype(np.float32)
    return [NewsRecord(f"N{i}", v[i], "a", "s", i, "v1") for i in range(n)]


class _Source:
    """Answers, raises (`fail`) or blocks (`gate` cleared) on alias lookups."""

    def __init__(self) -> None:
        self.rows = _recs()
        self.fail = False
        self.gate = threading.Event()
        self.gate.set()
        self.lookups = 0

    def resolve_alias(self, alias: str) -> str:
        self.lookups += 1
        self.gate.wait(10)
        if self.fail:
            raise ConnectionError("milvus is down")
        return "news_m_v1"

    def fetch_all(self, alias: str) -> tuple[str, list[NewsRecord]]:
        return "news_m_v1", list(self.rows)

    def build_version(self, alias: str, version: str, records: list[NewsRecord]) -> str:
        return f"{alias}_{version}"


def _mirror(source: _Source, **kwargs: Any) -> MirroredIndex:
    return MirroredIndex(cast(MilvusIndex, source), **kwargs)


def _until(cond: Callable[[], bool], mirror: MirroredIndex, timeout: float = 10) -> None:
    """Search until `cond` holds: searches are what trigger the background checks."""
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "condition not reached"
        mirror.count(ALIAS)
        time.sleep(0.005)


@pytest.mark.timeout(30)
def test_failing_source_makes_the_copy_stale_until_it_answers_again() -> None:
    source = _Source()
    mirror = _mirror(source, refresh_s=0.0)
    assert mirror.staleness(ALIAS) is None  # nothing loaded: nothing stale is served
    assert mirror.count(ALIAS) == 10
    health = mirror.health(ALIAS)
    assert health is not None and not health.failing and mirror.staleness(ALIAS) is None
    source.fail = True
    _until(lambda: mirror.staleness(ALIAS) is not None, mirror)
    first = mirror.staleness(ALIAS)
    assert first is not None and first >= 0
    health = mirror.health(ALIAS)
    assert health is not None and health.failing and "ConnectionError: milvus is down" in health.error
    assert mirror.count(ALIAS) == 10  # still serving the copy
    time.sleep(0.05)
    later = mirror.staleness(ALIAS)
    assert later is not None and later >= first + 0.04  # the age of the last answer, growing
    source.fail = False
    _until(lambda: mirror.staleness(ALIAS) is None, mirror)
    health = mirror.health(ALIAS)
    assert health is not None and not health.failing and not health.error


@pytest.mark.timeout(30)
def test_a_hung_check_counts_as_stale_after_stale_after_s() -> None:
    source = _Source()
    mirror = _mirror(source, refresh_s=0.0, stale_after_s=0.2)
    mirror.count(ALIAS)
    source.gate.clear()  # the next lookup hangs, as pymilvus does while it retries a dead server
    _until(lambda: (h := mirror.health(ALIAS)) is not None and h.checking_since is not None, mirror)
    assert mirror.staleness(ALIAS) is None  # a check in flight is not a failure yet
    time.sleep(0.3)
    stale = mirror.staleness(ALIAS)
    assert stale is not None and stale >= 0.2
    assert mirror.count(ALIAS) == 10  # searches never wait for the hung check
    source.gate.set()
    _until(lambda: mirror.staleness(ALIAS) is None, mirror)


def test_inline_failure_is_recorded_and_raised() -> None:
    source = _Source()
    mirror = _mirror(source, refresh_s=0.0, background=False)
    mirror.count(ALIAS)
    source.fail = True
    with pytest.raises(ConnectionError):
        mirror.count(ALIAS)
    assert mirror.staleness(ALIAS) is not None
    source.fail = False
    assert mirror.count(ALIAS) == 10 and mirror.staleness(ALIAS) is None


def test_failure_before_the_first_load_is_not_health() -> None:
    source = _Source()
    source.fail = True
    mirror = _mirror(source, background=False)
    with pytest.raises(ConnectionError):
        mirror.count(ALIAS)
    assert mirror.health(ALIAS) is None and mirror.staleness(ALIAS) is None


def test_build_version_counts_as_an_answer_and_healthy_checks_cost_no_lookup() -> None:
    source = _Source()
    mirror = _mirror(source, refresh_s=60.0)
    mirror.build_version(ALIAS, "v1", _recs(4))
    assert mirror.health(ALIAS) is not None and mirror.staleness(ALIAS) is None
    for _ in range(100):
        mirror.staleness(ALIAS)
        mirror.count(ALIAS)
    assert source.lookups == 0  # staleness reads the recorded state; it never asks Milvus
