"""One really trained tiny model for the whole test session (tests/conftest.py: `tiny_run`).

The services, Milvus-server and fault suites each used to train the very same model
(`train_tiny`: synth tiny seed 7 -> local embeddings -> 1 epoch) in their own session
fixture: three identical trainings per run. `shared_tiny_run` trains it once per session,
and once per *run* under pytest-xdist (the workers share the run's temp root and take
turns through a file lock).

The run directory is shared, so tests must treat it as read-only (copy it into tmp_path
to change anything). `RunGuard` enforces that: it fingerprints the tree when the run is
made and the session fixture fails at teardown if any test wrote into it.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
NEWSREC = [sys.executable, "-c", "from newsrec.cli import main; main()"]


def _run(args: list[str], env: dict[str, str]) -> None:
    subprocess.run(args, check=True, env=env, cwd=REPO, stdout=subprocess.DEVNULL)


def train_tiny(root: Path) -> Path:
    """synthetic tiny data -> local text embeddings -> `newsrec train` for 1 epoch.

    NEWSREC_TEST_RUN=DIR reuses an existing run directory (DIR/serving, DIR/data) to save time
    when iterating locally; CI always trains."""
    reuse = os.environ.get("NEWSREC_TEST_RUN")
    if reuse:
        return Path(reuse)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "OMP_NUM_THREADS": "1"}
    synth = f"from newsrec.data.synth import generate; generate('tiny', 7, {str(root / 'data')!r})"
    _run([sys.executable, "-c", synth], env)
    news = ["--news", str(root / "data/train/news.tsv"), "--news", str(root / "data/dev/news.tsv")]
    _run([*NEWSREC, "embed", *news, "--out", str(root / "emb"), "--quiet"], env)
    _run(
        [*NEWSREC, "train", "--data", str(root / "data"), "--out", str(root)]
        + ["--embeddings", str(root / "emb"), "--epochs", "1", "--output-dim", "64", "--threads", "1"],
        env,
    )
    return root


def run_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The temp directory every process of this pytest run sees: the session's base temp,
    or under xdist its parent (each worker's base temp is `<run>/popen-gwN`)."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


def summary_dir(config: pytest.Config) -> Path:
    """Texts (the fault matrices) that tests/conftest.py prints in the terminal summary, one
    file each: in the run's temp root, which the xdist controller (the printer) and its
    workers (the tests) share."""
    base: Path = config._tmp_path_factory.getbasetemp()  # type: ignore[attr-defined]
    return (base.parent if hasattr(config, "workerinput") else base) / "summary-texts"


def tree_fingerprint(root: Path) -> str:
    """Every file's path, size, mtime and the first and last 4 KiB: cheap, and any write
    through the usual APIs (rewrite, append, new or deleted file) changes it."""
    h = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        st = path.stat()
        h.update(f"{path.relative_to(root)}\0{st.st_size}\0{st.st_mtime_ns}\0".encode())
        with path.open("rb") as f:
            h.update(f.read(4096))
            if st.st_size > 8192:
                f.seek(-4096, os.SEEK_END)
                h.update(f.read())
    return h.hexdigest()


class RunGuard:
    """The shared run and its fingerprint; `check()` fails if a test changed the tree."""

    def __init__(self, run: Path) -> None:
        self.run = run
        self.fingerprint = tree_fingerprint(run)

    def check(self) -> None:
        if tree_fingerprint(self.run) != self.fingerprint:
            raise AssertionError(
                f"a test wrote into the shared trained run {self.run}: copy it into tmp_path "
                "before changing it (tests/fixtures_run.py)"
            )


def shared_tiny_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The run directory (data/, emb/, serving/, ...) of `train_tiny`, trained once per run."""
    if os.environ.get("NEWSREC_TEST_RUN"):
        return train_tiny(Path())
    root = run_root(tmp_path_factory)
    run, done = root / "tiny-run", root / "tiny-run.complete"
    with (root / "tiny-run.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another xdist worker may be training it right now
        try:
            if not done.exists():
                shutil.rmtree(run, ignore_errors=True)  # a half-made run of a failed attempt
                run.mkdir()
                train_tiny(run)
                done.write_text("ok\n")
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    return run
