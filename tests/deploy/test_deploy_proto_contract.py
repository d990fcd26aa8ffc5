"""`buf breaking` against the committed baseline image (protos/baseline.binpb) catches a
breaking change inside newsrec.v1, and passes an additive one (real buf, .tools/bin/buf).

buf is installed by scripts/install-tools.sh (make tools); a missing binary is a failure."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BUF = ROOT / ".tools" / "bin" / "buf"
PROTOS = ROOT / "protos"


def _breaking(protos: Path) -> subprocess.CompletedProcess[str]:
    if not BUF.exists():
        raise RuntimeError(f"{BUF} is missing: run `bash scripts/install-tools.sh` (make tools) first")
    return subprocess.run(
        [str(BUF), "breaking", "--against", "baseline.binpb"],
        cwd=protos,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _copy(tmp_path: Path) -> Path:
    dest = tmp_path / "protos"
    shutil.copytree(PROTOS, dest)
    return dest


def test_current_contract_matches_the_baseline() -> None:
    got = _breaking(PROTOS)
    assert got.returncode == 0, got.stdout + got.stderr


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("int32 k = 3;", "int64 k = 3;", 'changed type from "int32" to "int64"'),
        ("int32 k = 3;", "int32 top_k = 3;", 'changed name from "k" to "top_k"'),
        ("int32 k = 3;", "", 'Previously present field "3" with name "k"'),
    ],
)
def test_a_planted_breaking_change_fails(tmp_path: Path, old: str, new: str, message: str) -> None:
    protos = _copy(tmp_path)
    proto = protos / "newsrec" / "v1" / "recommend.proto"
    text = proto.read_text()
    assert old in text
    proto.write_text(text.replace(old, new, 1))
    got = _breaking(protos)
    assert got.returncode != 0 and message in got.stdout, got.stdout + got.stderr


def test_an_added_field_is_not_breaking(tmp_path: Path) -> None:
    protos = _copy(tmp_path)
    proto = protos / "newsrec" / "v1" / "recommend.proto"
    text = proto.read_text()
    proto.write_text(text.replace("int32 k = 3;", "int32 k = 3;\n  string note = 99;", 1))
    got = _breaking(protos)
    assert got.returncode == 0, got.stdout + got.stderr
