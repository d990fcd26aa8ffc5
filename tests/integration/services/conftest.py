"""Session fixtures for the services integration tests: a really trained tiny model,
Milvus Lite in a temp file, a private redis-server, and the full stack on loopback gRPC."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from svc_helpers import RedisProc, start_redis


@pytest.fixture
def redis_proc() -> Iterator[RedisProc]:
    r = start_redis()
    yield r
    r.kill()


@pytest.fixture(scope="session")
def trained_run(tiny_run: Path) -> Path:
    """The session's shared trained tiny run (tests/conftest.py): read-only."""
    return tiny_run
