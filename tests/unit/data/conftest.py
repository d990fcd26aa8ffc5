"""Fixtures of the data tests: paths of the hand-written MIND fixtures and a tiny synthetic set."""

from __future__ import annotations

from pathlib import Path

import pytest

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "mind"


@pytest.fixture(scope="session")
def mind_fixtures() -> Path:
    return FIXTURES


@pytest.fixture(scope="session")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`synth --size tiny --seed 7`, made once for the data tests."""
    from newsrec.data.synth import generate

    root = tmp_path_factory.mktemp("synth-tiny")
    generate("tiny", 7, root)
    return root
