"""Session-wide synthetic MIND for any test area (wired into tests/conftest.py by the lead).

Usage in a conftest.py:

    from fixtures_synth import tiny_dataset as _tiny  # tests/ is on sys.path (rootdir conftest)

    @pytest.fixture(scope="session")
    def tiny_mind(tmp_path_factory):
        return _tiny(tmp_path_factory)
"""

from __future__ import annotations

from pathlib import Path

import pytest

from newsrec.data.synth import generate

TINY_SEED = 7


def tiny_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Root of `synth --size tiny --seed 7` (train/ and dev/), generated once per session.

    The directory lives under pytest's session temp root, so every caller in the
    session (and across xdist-less reruns of a fixture) gets the same files.
    """
    root = tmp_path_factory.getbasetemp() / "synth-tiny-seed7"
    done = root / ".complete"
    if not done.exists():
        generate("tiny", TINY_SEED, root)
        done.write_text("ok\n")
    return root
