"""Registry: publish copies + checksums, tamper detection, atomic CURRENT flips."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from newsrec.errors import DataError, InvalidInput, NotFound
from newsrec.registry import CURRENT_FILE, Registry, publish

EMB = {"provider": "local", "model": "all-MiniLM-L6-v2", "dimensions": 384}
IDX = {"uri": "/tmp/x.db", "collection": "news_m_v1", "alias": "news_m", "index_type": "FLAT", "count": 3}


def _artifacts(tmp: Path) -> dict[str, Path]:
    serving = tmp / "src" / "serving"
    (serving / "sub").mkdir(parents=True, exist_ok=True)
    (serving / "weights.safetensors").write_bytes(b"\x00\x01weights")
    (serving / "sub" / "config.json").write_text('{"dim": 8}')
    report = tmp / "src" / "report.md"
    report.write_text("# report\n")
    return {"serving": serving, "report": report}


def _publish(root: Path, version: str, tmp: Path, **kw: object) -> object:
    return publish(root, "two_tower", version, _artifacts(tmp), {"epochs": 1}, {"auc": 0.61}, EMB, IDX, **kw)


def test_publish_copies_artifacts_with_checksums(tmp_path: Path) -> None:
    root = tmp_path / "reg"
    m = _publish(root, "v1", tmp_path)
    reg = Registry(root)
    got = reg.resolve("two_tower", "v1")
    assert got == m
    assert (got.artifact_dir("serving") / "sub" / "config.json").read_text() == '{"dim": 8}'
    assert got.artifact_dir("report").read_text() == "# report\n"
    stored = json.loads((root / "models/two_tower/v1/manifest.json").read_text())
    paths = {f["path"] for f in stored["artifacts"]["serving"]["files"]}
    assert paths == {"weights.safetensors", "sub/config.json"}
    assert all(len(f["sha256"]) == 64 for f in stored["artifacts"]["serving"]["files"])
    assert stored["index"]["alias"] == "news_m" and stored["embedding"]["provider"] == "local"
    assert not stored["artifacts"]["serving"]["path"].startswith("/")  # relative paths only
    got.verify()
    # no temporary directories left behind
    assert sorted(p.name for p in (root / "models/two_tower").iterdir()) == ["v1"]


def test_tampered_file_is_named(tmp_path: Path) -> None:
    m = _publish(tmp_path / "reg", "v1", tmp_path)
    target = m.artifact_dir("serving") / "weights.safetensors"
    target.write_bytes(b"evil")
    with pytest.raises(DataError, match=r"weights\.safetensors: checksum mismatch"):
        Registry(tmp_path / "reg").resolve("two_tower", "v1").verify()
    target.unlink()
    with pytest.raises(DataError, match=r"weights\.safetensors: missing"):
        m.verify()


def test_extra_file_in_artifact_is_reported(tmp_path: Path) -> None:
    m = _publish(tmp_path / "reg", "v1", tmp_path)
    (m.artifact_dir("serving") / "intruder.bin").write_bytes(b"x")
    with pytest.raises(DataError, match="intruder.bin: not in the manifest"):
        m.verify()


def test_current_flip_and_resolve(tmp_path: Path) -> None:
    root = tmp_path / "reg"
    reg = Registry(root)
    with pytest.raises(NotFound, match="no current version"):
        reg.resolve("two_tower")
    _publish(root, "v1", tmp_path / "a", set_current=True)
    assert reg.resolve("two_tower").version == "v1"
    _publish(root, "v2", tmp_path / "b")
    assert reg.resolve("two_tower").version == "v1"  # publishing alone does not flip
    reg.set_current("two_tower", "v2")
    assert reg.resolve("two_tower").version == "v2"
    assert (root / "models/two_tower" / CURRENT_FILE).read_text().strip() == "v2"
    assert reg.list_versions("two_tower") == ["v1", "v2"]
    with pytest.raises(NotFound, match="v9 not found"):
        reg.set_current("two_tower", "v9")
    assert reg.resolve("two_tower").version == "v2"


def test_republish_same_content_is_noop_different_is_error(tmp_path: Path) -> None:
    root = tmp_path / "reg"
    first = _publish(root, "v1", tmp_path)
    again = _publish(root, "v1", tmp_path)
    assert again.created_at == first.created_at
    (tmp_path / "src" / "report.md").write_text("# changed\n")
    with pytest.raises(InvalidInput, match="already published with different content"):
        publish(root, "two_tower", "v1", {"report": tmp_path / "src" / "report.md"}, {}, {}, EMB)


def test_bad_inputs_are_clear(tmp_path: Path) -> None:
    with pytest.raises(NotFound, match="missing.bin: artifact 'w' does not exist"):
        publish(tmp_path, "m", "v1", {"w": tmp_path / "missing.bin"}, {}, {}, EMB)
    with pytest.raises(InvalidInput, match="version '../x'"):
        publish(tmp_path, "m", "../x", {}, {}, {}, EMB)
    bad = tmp_path / "models" / "m" / "v2"
    bad.mkdir(parents=True)
    (bad / "manifest.json").write_text('{"name": "m", "surprise": 1}')
    with pytest.raises(DataError, match="v2/manifest.json: invalid manifest"):
        Registry(tmp_path).resolve("m", "v2")
    assert not list((tmp_path / "models" / "m").glob(".*tmp"))
