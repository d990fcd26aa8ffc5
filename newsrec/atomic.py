"""Atomic, verified artifact directories.

A directory artifact (a training run, a `serving/` dir, an embedding table) is written
into a hidden sibling `.NAME.partial-<pid>-<random>` and swapped into place only when
complete, so a reader sees the old artifact or the new one, never a mix. On Linux the
swap is one `renameat2(RENAME_EXCHANGE)`; elsewhere two renames, with the old copy set
aside as `.NAME.old-...` and restored by `clean_stale` if a crash falls between them.

`seal` writes `manifest.json` (sha256 and size of every file, the artifact's kind and
format version); `verify` recomputes it at load and raises `DataError` naming the first
file that is missing, differs, or was added after sealing. Every file is hashed, so
files added by later code are covered without listing them here.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import hashlib
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from newsrec.errors import DataError

MANIFEST_FILE = "manifest.json"
MANIFEST_FORMAT = 1
PARTIAL = ".partial-"
OLD = ".old-"
# Test-only fault hook: a process whose environment names a stage in this variable stops
# there (after printing a marker line on stderr) until it is killed. Read in one place.
PAUSE_ENV = "NEWSREC_TEST_PAUSE_AT"
_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _files(directory: Path, skip: Iterable[str]) -> list[str]:
    """Relative POSIX paths of every file under `directory` except the manifest and the
    top-level entries in `skip` (e.g. an embedding directory's resumable cache)."""
    top = {MANIFEST_FILE, *skip}
    out = []
    for p in directory.rglob("*"):
        rel = p.relative_to(directory)
        if rel.parts[0] in top or not p.is_file():
            continue
        out.append(rel.as_posix())
    return sorted(out)


def seal(
    directory: Path, kind: str, fmt: int, skip: Iterable[str] = (), closed: bool = True
) -> dict[str, Any]:
    """Hash every file of `directory` into its manifest.json (written atomically, last).
    `closed`: `verify` refuses files added later (False: they are ignored)."""
    files = {rel: {"sha256": sha256_file(directory / rel), "size": (directory / rel).stat().st_size}
             for rel in _files(directory, skip)}  # fmt: skip
    manifest = {
        "manifest_format": MANIFEST_FORMAT,
        "kind": kind,
        "format": fmt,
        "closed": closed,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "files": files,
    }
    write_text_atomic(directory / MANIFEST_FILE, json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return manifest


def read_manifest(directory: Path, kind: str | None) -> dict[str, Any]:
    """The manifest of `directory`; DataError when it is absent, unreadable or of another kind."""
    path = directory / MANIFEST_FILE
    if not path.is_file():
        raise DataError(
            f"{path}: missing: {directory} is a partial {kind or 'sealed'} artifact (or one written before "
            "manifests); refusing to load it, re-create it"
        )
    try:
        manifest = json.loads(path.read_text())
        files = manifest["files"]
        if (kind is not None and manifest.get("kind") != kind) or not isinstance(files, dict):
            raise ValueError(f"kind {manifest.get('kind')!r}, expected {kind!r}")
    except (ValueError, KeyError, TypeError) as exc:
        raise DataError(f"{path}: invalid manifest ({exc})") from exc
    return dict(manifest)


def is_sealed(directory: Path) -> bool:
    return (directory / MANIFEST_FILE).is_file()


def verify(
    directory: Path | str, kind: str | None = None, skip: Iterable[str] = (), extra_ok: bool = False
) -> dict[str, Any]:
    """Recompute every checksum of a sealed directory; DataError names the first bad file.

    `kind` None accepts the kind the manifest names. A file the manifest does not list is
    refused like a changed one, unless the manifest is open (`seal(closed=False)`) or
    `extra_ok` (an embedding directory holds its cache beside the table)."""
    directory = Path(directory)
    skip = tuple(skip)
    if kind is None:
        kind = str(read_manifest(directory, None).get("kind"))
    manifest = read_manifest(directory, kind)
    extra_ok = extra_ok or manifest.get("closed") is False
    where = directory / MANIFEST_FILE
    for rel, entry in sorted(manifest["files"].items()):
        path = directory / rel
        if not path.is_file():
            raise DataError(f"{path}: missing (listed in {where}; partial or edited {kind} artifact)")
        size = path.stat().st_size
        if size != entry.get("size"):
            raise DataError(
                f"{path}: {size} bytes, {where} says {entry.get('size')} (partial or edited {kind} artifact)"
            )
        digest = sha256_file(path)
        if digest != entry.get("sha256"):
            raise DataError(
                f"{path}: sha256 {digest[:12]}... differs from {str(entry.get('sha256'))[:12]}... in "
                f"{where} (file modified after it was written)"
            )
    if not extra_ok:
        extra = [rel for rel in _files(directory, skip) if rel not in manifest["files"]]
        if extra:
            raise DataError(f"{directory / extra[0]}: not in {where} (added after the {kind} was sealed)")
    return manifest


def write_text_atomic(path: Path, text: str) -> None:
    """Write a small file by temp file + fsync + rename: readers see old or new bytes."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give what open() would
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def pause_point(stage: str) -> None:
    """Fault hook for the kill tests: stop here when `NEWSREC_TEST_PAUSE_AT` names `stage`."""
    if os.environ.get(PAUSE_ENV) != stage:
        return
    print(f"newsrec: paused at {stage}", file=sys.stderr, flush=True)
    while True:  # until SIGKILL
        time.sleep(3600)


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _owner_pid(name: str, marker: str) -> int | None:
    try:
        return int(name.split(marker, 1)[1].split("-", 1)[0])
    except (IndexError, ValueError):
        return None


def _carried(directory: Path, owned: frozenset[str] | None) -> list[str]:
    """Top-level entries of `directory` that the artifact does not own (kept across swaps)."""
    if owned is None or not directory.is_dir():
        return []
    return sorted(p.name for p in directory.iterdir() if p.name not in owned)


def _move_missing(src: Path, dest: Path, names: Iterable[str]) -> None:
    for name in names:
        if (src / name).exists() and not (dest / name).exists():
            os.rename(src / name, dest / name)


def clean_stale(target: Path, owned: Iterable[str] | None = None) -> list[Path]:
    """Remove what killed writers of `target` left next to it; returns what was removed.

    Directories of live writers are left alone. A `.old-` copy goes back when `target` is
    missing (a crash between the two renames of the fallback swap); entries the artifact
    does not own (`owned`; e.g. an embedding cache, a user's data next to a run) go back
    into `target` when it lacks them (a crash while they were being carried over)."""
    removed: list[Path] = []
    parent = target.parent
    if not parent.is_dir():
        return removed
    own = None if owned is None else frozenset(owned)
    for marker in (OLD, PARTIAL):
        for p in sorted(parent.glob(f".{target.name}{marker}*")):
            pid = _owner_pid(p.name, marker)
            if pid is not None and pid != os.getpid() and _pid_alive(pid):
                continue
            if marker == OLD and not target.exists() and (p / "x").is_dir():
                os.rename(p / "x", target)
            elif marker == PARTIAL and target.is_dir():
                _move_missing(p, target, _carried(p, own))
            shutil.rmtree(p, ignore_errors=True)
            removed.append(p)
    return removed


def _fsync_tree(directory: Path) -> None:
    """fsync every file and directory under `directory`, so a rename publishes bytes on
    disk (a power loss after the swap must not leave empty files in the new artifact)."""
    for p in [*directory.rglob("*"), directory]:
        if p.is_symlink():
            continue
        fd = os.open(p, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _fsync_dir(directory: Path) -> None:
    with contextlib.suppress(OSError):  # directory fsync is not supported everywhere
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap two paths (Linux renameat2); False where the system cannot."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        fn = ctypes.CDLL(None, use_errno=True).renameat2
    except (AttributeError, OSError):
        return False
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    if fn(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
        return False
    raise OSError(err, os.strerror(err), str(a))


def replace_dir(stage: Path, target: Path, owned: Iterable[str] | None = None) -> None:
    """Put the complete directory `stage` at `target`. The old target's entries outside
    `owned` are carried into the new one (None: the artifact owns everything)."""
    own = None if owned is None else frozenset(owned)
    _fsync_tree(stage)
    if not target.exists():
        os.rename(stage, target)
    elif _exchange(stage, target):  # `stage` now holds the old artifact
        _move_missing(stage, target, _carried(stage, own))
        shutil.rmtree(stage)
    else:
        aside = Path(tempfile.mkdtemp(prefix=f".{target.name}{OLD}{os.getpid()}-", dir=target.parent))
        os.rename(target, aside / "x")  # inside a unique directory that `clean_stale` knows
        os.rename(stage, target)
        _move_missing(aside / "x", target, _carried(aside / "x", own))
        shutil.rmtree(aside)
    _fsync_dir(target.parent)


def _umask() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return umask


def _default_mode(target: Path) -> int:
    """The target's permissions, else what mkdir would give (mkdtemp makes 0700)."""
    if target.is_dir():
        return target.stat().st_mode & 0o7777
    return 0o777 & ~_umask()


class StagedDir:
    """A hidden sibling of `target` to write a new artifact into; `commit` swaps it in.

    As a context manager, leaving without `commit` (an error) removes the stage and leaves
    `target` as it was. `owned` names the top-level entries the artifact consists of; the
    old target's other entries are kept (None: the artifact is the whole directory)."""

    def __init__(self, target: Path | str, owned: Iterable[str] | None = None) -> None:
        self.target = Path(target).resolve()  # a symlinked run dir: replace what it points at
        self.owned = None if owned is None else frozenset(owned) | {MANIFEST_FILE}
        if self.target.exists() and not self.target.is_dir():
            raise DataError(f"{self.target}: exists and is not a directory")
        cwd = Path.cwd().resolve()
        if self.target in (cwd, *cwd.parents, Path.home().resolve()):
            raise DataError(f"{self.target}: refusing to replace the working or home directory (or a parent)")
        self.target.parent.mkdir(parents=True, exist_ok=True)
        clean_stale(self.target, self.owned)
        self.path = Path(
            tempfile.mkdtemp(prefix=f".{self.target.name}{PARTIAL}{os.getpid()}-", dir=self.target.parent)
        )
        os.chmod(self.path, _default_mode(self.target))
        self.committed = False

    def commit(self) -> Path:
        replace_dir(self.path, self.target, self.owned)
        self.committed = True
        return self.target

    def commit_new(self) -> Path:
        """Rename into place only if `target` does not exist (never replace a published
        version); OSError if it appeared meanwhile."""
        _fsync_tree(self.path)
        os.rename(self.path, self.target)  # fails on an existing non-empty directory
        self.committed = True
        _fsync_dir(self.target.parent)
        return self.target

    def discard(self) -> None:
        if not self.committed:
            shutil.rmtree(self.path, ignore_errors=True)

    def __enter__(self) -> StagedDir:
        return self

    def __exit__(self, *exc: object) -> None:
        self.discard()
