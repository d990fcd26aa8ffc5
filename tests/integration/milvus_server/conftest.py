"""A real Milvus server for the whole test run: the embedded standalone Milvus 2.3.5 of the
PyPI package `milvus` (a dev extra), on a free port, with its data in a session temp dir.

One server per run (it takes 10-40 s to start on a loaded 2-core machine). Tests isolate
themselves by alias/collection names, never by dropping everything. `MilvusServerProc.stop()`
and `.start()` (milvus_proc.py) take the server down and bring it back on the same port and data directory
(the server-restart scenarios); the fixture restarts it if a test left it stopped.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from milvus_proc import MilvusServerProc

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "services"))  # svc_helpers


@pytest.fixture(scope="session")
def milvus_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MilvusServerProc]:
    pytest.importorskip("milvus", reason="the dev extra `milvus` (embedded Milvus server) is not installed")
    proc = MilvusServerProc(tmp_path_factory.mktemp("milvus_server"))
    proc.start()
    try:
        yield proc
    finally:
        proc.stop()


@pytest.fixture
def server(milvus_server: MilvusServerProc) -> MilvusServerProc:
    """The session server, started again if an earlier test left it stopped."""
    if not milvus_server.running:
        milvus_server.start()
    return milvus_server


@pytest.fixture(scope="session")
def trained_run(tiny_run: Path) -> Path:
    """The session's shared trained tiny run (tests/conftest.py): read-only."""
    return tiny_run
