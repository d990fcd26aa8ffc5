"""Fault-suite fixtures: a tiny model trained once per session and published to a registry,
the split-mode stack (one process per service, private Redis) per module, and the printed
fault matrices (tests/conftest.py prints them in the terminal summary, so they show without -s)."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration" / "services"))
from fault_load import MATRICES  # noqa: E402
from fault_stack import FaultStack, redis_available  # noqa: E402
from fixtures_run import summary_dir  # noqa: E402


@pytest.fixture(scope="session")
def fault_model(tiny_run: Path) -> Path:
    """A run directory (data/, serving/) of a really trained tiny model (1 epoch): the
    session's shared one (tests/conftest.py), read-only."""
    return tiny_run


@pytest.fixture(scope="session")
def fault_registry(fault_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """REGISTRY with newsrec/v1 (CURRENT) = the tiny model."""
    from newsrec.registry import Registry

    run = fault_model
    root = tmp_path_factory.mktemp("fault_registry")
    Registry(root).publish(
        "newsrec",
        "v1",
        {"serving": run / "serving"},
        config={},
        metrics={},
        embedding={"provider": "local", "model": "all-MiniLM-L6-v2", "dimensions": 384},
        set_current=True,
    )
    return root


@pytest.fixture(scope="session")
def fault_users(fault_model: Path) -> list[tuple[str, list[str]]]:
    """(user, history) pairs of the dev split, for load."""
    from newsrec.data import read_behaviors

    imps, _ = read_behaviors(fault_model / "data/dev/behaviors.tsv")
    seen: dict[tuple[str, tuple[str, ...]], None] = {}
    for imp in imps:
        if len(imp.history) >= 2:
            seen[(imp.user_id, tuple(imp.history[-20:]))] = None
    return [(u, list(h)) for u, h in seen]


@pytest.fixture(scope="module")
def fault_stack(fault_registry: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[FaultStack]:
    """The split-mode stack (fault_stack.FaultStack), started once per module."""
    if not redis_available():
        pytest.skip("redis-server / redis-cli not installed (apt-get install redis-server)")
    stack = FaultStack(tmp_path_factory.mktemp("split"))
    stack.build(fault_registry)
    try:
        stack.start()
        yield stack
    finally:
        stack.stop()


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Hand the matrices to the terminal summary (tests/conftest.py): MATRICES lives in the
    process that ran the tests, which under pytest-xdist is a worker, not the printer."""
    out = summary_dir(session.config)
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    for i, (title, path) in enumerate(MATRICES):
        if path.exists():
            out.mkdir(exist_ok=True)
            (out / f"{worker}-{i:03d}.md").write_text(f"{title}\n{path.read_text()}")
