"""newsrec.atomic: staged directories swapped in whole, sealed manifests, stale leftovers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from newsrec import atomic
from newsrec.atomic import MANIFEST_FILE, StagedDir, clean_stale, seal, verify
from newsrec.errors import DataError


def _write(d: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        (d / rel).parent.mkdir(parents=True, exist_ok=True)
        (d / rel).write_text(text)


def _tree(d: Path) -> dict[str, str]:
    return {p.relative_to(d).as_posix(): p.read_text() for p in sorted(d.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("exchange", [True, False], ids=["renameat2", "two-renames"])
def test_commit_replaces_owned_entries_and_keeps_the_rest(
    tmp_path: Path, exchange: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not exchange:
        monkeypatch.setattr(atomic, "_exchange", lambda a, b: False)
    target = tmp_path / "run"
    _write(target, {"config.json": "old", "serving/a.npy": "old", "data/news.tsv": "user's"})
    with StagedDir(target, owned=("config.json", "serving")) as stage:
        _write(stage.path, {"config.json": "new", "serving/b.npy": "new"})
        assert _tree(target)["config.json"] == "old"  # nothing visible before the commit
        stage.commit()
    assert _tree(target) == {"config.json": "new", "serving/b.npy": "new", "data/news.tsv": "user's"}
    assert [p.name for p in tmp_path.iterdir()] == ["run"]  # no stage or old copy left


def test_an_error_before_commit_leaves_the_target_as_it_was(tmp_path: Path) -> None:
    target = tmp_path / "art"
    _write(target, {"x": "old"})
    with pytest.raises(RuntimeError), StagedDir(target) as stage:
        _write(stage.path, {"x": "half"})
        raise RuntimeError("killed by a bug")
    assert _tree(target) == {"x": "old"} and [p.name for p in tmp_path.iterdir()] == ["art"]


def test_refuses_to_replace_the_working_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DataError, match="working or home directory"):
        StagedDir(".")


def test_seal_and_verify_name_the_bad_file(tmp_path: Path) -> None:
    d = tmp_path / "a"
    _write(d, {"w.bin": "weights", "sub/c.json": "{}"})
    manifest = seal(d, "serving", 2)
    assert set(manifest["files"]) == {"w.bin", "sub/c.json"} and manifest["format"] == 2
    verify(d, "serving")
    (d / "w.bin").write_text("WEIGHTS")  # same size, other bytes
    with pytest.raises(DataError, match=r"w\.bin: sha256 .* differs"):
        verify(d, "serving")
    (d / "w.bin").write_text("w")
    with pytest.raises(DataError, match=r"w\.bin: 1 bytes, .*manifest\.json says 7"):
        verify(d, "serving")
    (d / "w.bin").write_text("weights")
    (d / "extra.npy").write_text("x")
    with pytest.raises(DataError, match=r"extra\.npy: not in .*manifest\.json"):
        verify(d, "serving")
    (d / "extra.npy").unlink()
    (d / "sub" / "c.json").unlink()
    with pytest.raises(DataError, match=r"c\.json: missing"):
        verify(d, "serving")
    with pytest.raises(DataError, match="invalid manifest"):
        verify(d, "embeddings")
    (d / MANIFEST_FILE).unlink()
    with pytest.raises(DataError, match=r"manifest\.json: missing: .* partial serving artifact"):
        verify(d, "serving")


_KILLED_WRITER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from newsrec.atomic import StagedDir, pause_point
    stage = StagedDir(Path(sys.argv[1]), owned=("table.npy",))
    (stage.path / "table.npy").write_text("new")
    pause_point("test-commit")
    stage.commit()
    """
)


def _start_paused(script: str, *args: str, stage: str) -> subprocess.Popen[str]:
    env = {**os.environ, atomic.PAUSE_ENV: stage}
    proc = subprocess.Popen([sys.executable, "-c", script, *args], env=env, stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    line = proc.stderr.readline()
    assert f"paused at {stage}" in line, line
    return proc


def test_sigkill_mid_write_keeps_the_old_directory_and_the_next_writer_cleans_up(tmp_path: Path) -> None:
    target = tmp_path / "emb"
    _write(target, {"table.npy": "old", "cache/db": "cached"})
    proc = _start_paused(_KILLED_WRITER, str(target), stage="test-commit")
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert _tree(target) == {"table.npy": "old", "cache/db": "cached"}
    leftover = [p for p in tmp_path.iterdir() if p.name.startswith(".emb.partial-")]
    assert len(leftover) == 1 and (leftover[0] / "table.npy").read_text() == "new"
    assert clean_stale(target, ("table.npy",)) == leftover
    assert [p.name for p in tmp_path.iterdir()] == ["emb"]


def test_clean_stale_puts_back_what_a_crash_left_aside(tmp_path: Path) -> None:
    target = tmp_path / "emb"
    _write(target, {"table.npy": "new"})
    dead = 2**22 + 12345  # above the default pid_max: no such process
    partial = tmp_path / f".emb.partial-{dead}-abc"
    _write(partial, {"table.npy": "old", "cache/db": "cached"})  # killed while carrying the cache over
    aside = tmp_path / f".other.old-{dead}-x" / "x"
    _write(aside, {"f": "old"})  # killed between the two renames of the fallback swap
    clean_stale(target, owned=("table.npy",))
    clean_stale(tmp_path / "other")
    assert _tree(target) == {"table.npy": "new", "cache/db": "cached"}
    assert _tree(tmp_path / "other") == {"f": "old"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["emb", "other"]


def test_a_live_writers_stage_is_left_alone(tmp_path: Path) -> None:
    target = tmp_path / "run"
    live = tmp_path / f".run.partial-{os.getppid()}-abc"
    live.mkdir()
    clean_stale(target)
    assert live.is_dir()
