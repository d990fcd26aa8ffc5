"""Model registry on a filesystem: versioned, checksummed, atomically published.

Layout::

    REGISTRY/models/<name>/<version>/manifest.json
    REGISTRY/models/<name>/<version>/<artifact key>/...   (copied artifacts)
    REGISTRY/models/<name>/CURRENT                          (the current version's name)

A version directory appears all at once: it is assembled in a temporary sibling
directory and renamed into place, so a reader never sees half an artifact. `CURRENT`
is replaced by writing a temporary file and renaming it over the old one.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import tempfile
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from newsrec import atomic
from newsrec.errors import DataError, InvalidInput, NotFound

MANIFEST_FILE = "manifest.json"
CURRENT_FILE = "CURRENT"
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FileEntry(_Strict):
    """One file of an artifact: path relative to the artifact directory + sha256."""

    path: str
    sha256: str
    size: int


class ArtifactEntry(_Strict):
    """A copied artifact: a single file or a directory tree (path relative to the version dir)."""

    path: str
    kind: str = Field(pattern="^(file|dir)$")
    files: list[FileEntry]


class EmbeddingInfo(_Strict):
    provider: str
    model: str
    dimensions: int | None = None
    base_url: str | None = None


class IndexInfo(_Strict):
    """Where the news vectors of this version live in Milvus."""

    uri: str
    collection: str
    alias: str
    index_type: str = "FLAT"
    count: int | None = None


class Manifest(_Strict):
    name: str
    version: str
    created_at: str
    config: dict[str, Any]
    metrics: dict[str, float]
    embedding: EmbeddingInfo
    index: IndexInfo | None = None
    artifacts: dict[str, ArtifactEntry]
    # Set by `Registry.resolve`; not part of the stored JSON.
    root_dir: str | None = Field(default=None, exclude=True)

    def version_dir(self) -> Path:
        if self.root_dir is None:
            raise InvalidInput(f"manifest {self.name}/{self.version} is not attached to a registry directory")
        return Path(self.root_dir)

    def artifact_dir(self, key: str) -> Path:
        """Absolute path of artifact `key` (a directory, or a file for single-file artifacts)."""
        if key not in self.artifacts:
            raise NotFound(
                f"model {self.name}/{self.version} has no artifact {key!r} (has: {sorted(self.artifacts)})"
            )
        return self.version_dir() / self.artifacts[key].path

    def verify(self, keys: Iterable[str] | None = None) -> None:
        """Recompute every checksum (of the artifacts `keys`, default all); raise DataError
        naming the first file that differs or is missing."""
        base = self.version_dir()
        wanted = None if keys is None else set(keys)
        for key, entry in sorted(self.artifacts.items()):
            if wanted is not None and key not in wanted:
                continue
            art = base / entry.path
            for f in entry.files:
                path = art / f.path if entry.kind == "dir" else art
                if not path.is_file():
                    raise DataError(f"{path}: missing (artifact {key!r} of {self.name}/{self.version})")
                digest = _sha256(path)
                if digest != f.sha256:
                    raise DataError(
                        f"{path}: checksum mismatch (artifact {key!r} of {self.name}/{self.version}): "
                        f"expected sha256 {f.sha256[:12]}..., found {digest[:12]}... (file was modified)"
                    )
            if entry.kind == "dir":
                listed = {f.path for f in entry.files}
                extra = sorted(p for p in _list_files(art) if p not in listed)
                if extra:
                    raise DataError(f"{art / extra[0]}: not in the manifest of {self.name}/{self.version}")


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _list_files(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


def _check_name(what: str, value: str) -> str:
    if not _NAME_RE.match(value):
        raise InvalidInput(f"{what} {value!r}: use letters, digits, '.', '_' or '-' (max 128 chars)")
    return value


def _copy_artifact(key: str, src: Path, dest_root: Path) -> ArtifactEntry:
    _check_name("artifact key", key)
    if not src.exists():
        raise NotFound(f"{src}: artifact {key!r} does not exist")
    if src.is_dir():
        sealed = atomic.verify(src) if atomic.is_sealed(src) else None  # never publish a partial run
        dest = dest_root / key
        shutil.copytree(src, dest)
        files = [
            FileEntry(path=rel, sha256=_sha256(dest / rel), size=(dest / rel).stat().st_size)
            for rel in _list_files(dest)
        ]
        if sealed is not None:
            _same_as_sealed(src, files, sealed)
        return ArtifactEntry(path=key, kind="dir", files=files)
    dest = dest_root / key / src.name
    dest.parent.mkdir(parents=True)
    shutil.copy2(src, dest)
    entry = FileEntry(path=src.name, sha256=_sha256(dest), size=dest.stat().st_size)
    return ArtifactEntry(path=f"{key}/{src.name}", kind="file", files=[entry])


def _same_as_sealed(src: Path, copied: list[FileEntry], sealed: dict[str, Any]) -> None:
    """The copy must hold the bytes the source's own manifest lists (nothing changed
    between its verification and the copy, nothing lost in the copy)."""
    listed = sealed["files"]
    for f in copied:
        want = listed.get(f.path)
        if want is not None and want.get("sha256") != f.sha256:
            raise DataError(f"{src / f.path}: changed while it was being published (sha256 differs)")


_write_atomic = atomic.write_text_atomic


class Registry:
    """A registry rooted at a directory (created on first publish)."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)

    def model_dir(self, name: str) -> Path:
        return self.root / "models" / _check_name("model name", name)

    def list_models(self) -> list[str]:
        models = self.root / "models"
        return sorted(p.name for p in models.iterdir() if p.is_dir()) if models.is_dir() else []

    def list_versions(self, name: str) -> list[str]:
        """Published versions of `name`, oldest first (by creation time)."""
        d = self.model_dir(name)
        if not d.is_dir():
            return []
        # A hidden directory is a publish in progress or killed: never a version.
        found = [
            p
            for p in d.iterdir()
            if not p.name.startswith(".") and p.is_dir() and (p / MANIFEST_FILE).is_file()
        ]
        return [p.name for p in sorted(found, key=lambda p: (self._load(p).created_at, p.name))]

    def current(self, name: str) -> str | None:
        path = self.model_dir(name) / CURRENT_FILE
        return path.read_text().strip() or None if path.is_file() else None

    def resolve(self, name: str, version: str | None = None) -> Manifest:
        """The manifest of `version`, or of the current version when None."""
        if version is None:
            version = self.current(name)
            if version is None:
                raise NotFound(f"model {name!r} has no current version in {self.root}")
        vdir = self.model_dir(name) / _check_name("version", version)
        if not (vdir / MANIFEST_FILE).is_file():
            have = self.list_versions(name)
            raise NotFound(f"model {name}/{version} not found in {self.root} (versions: {have or 'none'})")
        return self._load(vdir)

    @staticmethod
    def _load(vdir: Path) -> Manifest:
        path = vdir / MANIFEST_FILE
        try:
            data = json.loads(path.read_text())
            return Manifest.model_validate({**data, "root_dir": str(vdir)})
        except (json.JSONDecodeError, ValidationError) as exc:
            raise DataError(f"{path}: invalid manifest ({exc})") from exc

    def set_current(self, name: str, version: str) -> None:
        """Point CURRENT at `version` (which must exist) by an atomic rename."""
        self.resolve(name, version)
        _write_atomic(self.model_dir(name) / CURRENT_FILE, version + "\n")

    def publish(
        self,
        name: str,
        version: str,
        artifacts: dict[str, Path],
        config: dict[str, Any],
        metrics: dict[str, float],
        embedding: EmbeddingInfo | dict[str, Any],
        index_info: IndexInfo | dict[str, Any] | None = None,
        set_current: bool = False,
    ) -> Manifest:
        """Copy `artifacts` into a new version directory and write its manifest.

        Publishing an existing version is an error unless the new manifest would be
        identical in content (same checksums, config, metrics): then it is a no-op, so a
        re-run pipeline step succeeds without rewriting anything.
        """
        vdir = self.model_dir(name) / _check_name("version", version)
        vdir.parent.mkdir(parents=True, exist_ok=True)
        stage = atomic.StagedDir(vdir)  # also removes what a killed publish of it left
        tmp = stage.path
        try:
            entries = {key: _copy_artifact(key, Path(src), tmp) for key, src in sorted(artifacts.items())}
            manifest = Manifest(
                name=name,
                version=version,
                created_at=datetime.now(UTC).isoformat(timespec="seconds"),
                config=config,
                metrics={k: float(v) for k, v in metrics.items()},
                embedding=EmbeddingInfo.model_validate(embedding)
                if isinstance(embedding, dict)
                else embedding,
                index=IndexInfo.model_validate(index_info) if isinstance(index_info, dict) else index_info,
                artifacts=entries,
            )
            if vdir.exists():
                existing = self._load(vdir)
                if _same_content(existing, manifest):
                    stage.discard()
                    if set_current:
                        self.set_current(name, version)
                    return existing
                raise InvalidInput(
                    f"model {name}/{version} is already published with different content "
                    f"({vdir}); publish a new version instead"
                )
            (tmp / MANIFEST_FILE).write_text(manifest.model_dump_json(indent=2) + "\n")
            atomic.pause_point("publish-commit")  # the kill tests stop here
            stage.commit_new()  # a rename that fails if another publish got there first
        finally:
            stage.discard()
        if set_current:
            self.set_current(name, version)
        return self.resolve(name, version)


def _same_content(a: Manifest, b: Manifest) -> bool:
    skip = {"created_at", "root_dir"}
    return a.model_dump(exclude=skip) == b.model_dump(exclude=skip)


def verify_artifact_dir(directory: Path) -> bool:
    """Verify a directory artifact of a registry version by that version's checksums.
    False when `directory` is not one (then nothing was checked); DataError when it fails.
    Lets `load_serving` trust a serving dir published before serving dirs were sealed."""
    vdir = directory.parent
    path = vdir / MANIFEST_FILE
    if not path.is_file():
        return False
    try:
        manifest = Registry._load(vdir)
    except DataError:
        return False  # not a registry manifest
    keys = [k for k, e in manifest.artifacts.items() if e.kind == "dir" and e.path == directory.name]
    if not keys:
        return False
    manifest.verify(keys)
    return True


# -- object stores (s3://, gs://, minio://) -------------------------------------------------
# Cluster runs keep data and registries in a bucket: pods are ephemeral. fsspec does the I/O
# (s3fs for s3:// and minio://, gcsfs for gs:// when installed); credentials and endpoints
# come from the usual environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, and
# AWS_ENDPOINT_URL / FSSPEC_S3_ENDPOINT_URL for MinIO or another S3-compatible store).
REMOTE_SCHEMES = ("s3://", "gs://", "gcs://", "minio://")


def is_remote(location: str | Path) -> bool:
    """True for an object-store URI (s3://, gs://, minio://), False for a local path."""
    return str(location).startswith(REMOTE_SCHEMES)


def _fs(uri: str) -> tuple[Any, str]:
    """(fsspec filesystem, path inside it) of an object-store URI; minio:// is S3."""
    import fsspec

    if uri.startswith("minio://"):
        uri = "s3://" + uri.removeprefix("minio://")
    try:
        fs, path = fsspec.core.url_to_fs(uri)
    except (ImportError, ValueError) as exc:
        raise InvalidInput(f"{uri}: no object-store driver ({exc}); install s3fs or gcsfs") from exc
    return fs, path.rstrip("/")


def download_tree(uri: str, dest: Path) -> Path:
    """Copy every object under `uri` into the directory `dest` (created); returns `dest`."""
    fs, root = _fs(uri)
    files = [f for f in fs.find(root) if not Path(f).name.startswith(".")]
    if not files:
        raise NotFound(f"{uri}: no objects under this prefix")
    for f in files:
        target = dest / f[len(root) :].lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        fs.get_file(f, str(target))
    return dest


def remote_fingerprint(uri: str) -> str:
    """Content fingerprint of the objects under `uri` from the store's own checksums (ETag,
    md5 or crc32c) and sizes: changes when any object's bytes change, without a download."""
    fs, root = _fs(uri)
    h = hashlib.sha256()
    for path, info in sorted(fs.find(root, detail=True).items()):
        tag = info.get("ETag") or info.get("md5Hash") or info.get("crc32c") or info.get("mtime", "")
        h.update(f"{path[len(root) :]}\0{info.get('size')}\0{tag}\n".encode())
    return h.hexdigest()[:16]


def publish(
    registry_root: Path | str,
    name: str,
    version: str,
    artifacts: dict[str, Path],
    config: dict[str, Any],
    metrics: dict[str, float],
    embedding: EmbeddingInfo | dict[str, Any],
    index_info: IndexInfo | dict[str, Any] | None = None,
    set_current: bool = False,
) -> Manifest:
    """`Registry(root).publish(...)` into a local path or an object-store registry root.

    Remote: the version is published into a scratch local registry (checksums, manifest),
    then its directory is uploaded to ROOT/models/<name>/<version>/, and CURRENT is written
    last, so a reader that follows CURRENT finds a complete version. Re-publishing the same
    version uploads the same bytes again (idempotent)."""
    if not is_remote(registry_root):
        return Registry(registry_root).publish(
            name, version, artifacts, config, metrics, embedding, index_info, set_current
        )
    fs, root = _fs(str(registry_root))
    with tempfile.TemporaryDirectory(prefix="newsrec-registry-") as tmp:
        m = Registry(tmp).publish(name, version, artifacts, config, metrics, embedding, index_info)
        vdir = m.version_dir()
        remote_vdir = f"{root}/models/{name}/{version}"
        for f in sorted(p for p in vdir.rglob("*") if p.is_file()):
            fs.put_file(str(f), f"{remote_vdir}/{f.relative_to(vdir).as_posix()}")
        if set_current:
            fs.pipe_file(f"{root}/models/{name}/{CURRENT_FILE}", (version + "\n").encode())
    return m
