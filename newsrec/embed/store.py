"""On-disk format of a news embedding table: vectors.npy + ids.json + metadata.json,
sealed by manifest.json (sha256 and size of each; see `newsrec.atomic`).

No pickle: `np.load(..., allow_pickle=False)` and plain JSON.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from newsrec.atomic import MANIFEST_FILE, StagedDir, pause_point, seal, verify
from newsrec.errors import DataError

VECTORS_FILE = "vectors.npy"
IDS_FILE = "ids.json"
METADATA_FILE = "metadata.json"
FAILURES_FILE = "failures.json"
# What one table consists of (replaced together); the rest of the directory is kept.
OWNED = (VECTORS_FILE, IDS_FILE, METADATA_FILE, FAILURES_FILE, MANIFEST_FILE)
EMBEDDINGS_KIND = "embeddings"
TABLE_FORMAT = 1


@dataclass
class EmbeddingTable:
    """Row i of `vectors` is the embedding of news `ids[i]`."""

    ids: list[str]
    vectors: np.ndarray
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.vectors.ndim != 2 or self.vectors.shape[0] != len(self.ids):
            raise DataError(f"embedding table: {len(self.ids)} ids but vectors of shape {self.vectors.shape}")
        self._row = {news_id: i for i, news_id in enumerate(self.ids)}

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1])

    def row(self, news_id: str) -> int | None:
        """Row index of `news_id`, or None when it has no vector."""
        return self._row.get(news_id)

    def get(self, news_id: str) -> np.ndarray | None:
        i = self._row.get(news_id)
        return None if i is None else self.vectors[i]


def save_embeddings(out_dir: Path, table: EmbeddingTable) -> None:
    """Write and seal the table atomically: the files go into a hidden sibling of
    `out_dir` swapped in when complete; everything else in `out_dir` (the resumable
    cache) is carried over. A crash leaves the previous table, never a mix."""
    if table.vectors.shape[0] == 0 or table.dim == 0:
        raise DataError(f"{out_dir}: refusing to write an empty table (shape {table.vectors.shape})")
    with StagedDir(out_dir, owned=OWNED) as stage:
        vectors = np.ascontiguousarray(table.vectors, dtype=np.float32)
        np.save(stage.path / VECTORS_FILE, vectors, allow_pickle=False)
        (stage.path / IDS_FILE).write_text(json.dumps(table.ids))
        (stage.path / METADATA_FILE).write_text(json.dumps(table.metadata, indent=2, sort_keys=True))
        seal(stage.path, EMBEDDINGS_KIND, TABLE_FORMAT, closed=False)  # the cache lives beside it
        pause_point("embed-commit")  # the kill tests stop here: new table complete, not swapped in
        stage.commit()


def load_embeddings(directory: Path) -> EmbeddingTable:
    """Read a table written by `save_embeddings` after verifying its manifest; errors
    name the missing, partial or edited file."""
    directory = Path(directory)
    for name in (VECTORS_FILE, IDS_FILE, METADATA_FILE):
        if not (directory / name).is_file():
            raise DataError(f"{directory / name}: missing (not an embedding directory?)")
    if not (directory / MANIFEST_FILE).is_file():
        raise DataError(
            f"{directory / MANIFEST_FILE}: missing: a partial table or one written before manifests; "
            "run the same `newsrec embed` again (cached vectors are reused) to re-create it"
        )
    verify(directory, EMBEDDINGS_KIND)  # open manifest: the cache and other neighbours are not the table
    vectors = np.load(directory / VECTORS_FILE, allow_pickle=False)
    if vectors.ndim != 2 or vectors.shape[0] == 0 or vectors.shape[1] == 0:
        raise DataError(f"{directory / VECTORS_FILE}: empty or zero-dimensional (shape {vectors.shape})")
    try:
        ids = json.loads((directory / IDS_FILE).read_text())
        metadata = json.loads((directory / METADATA_FILE).read_text())
    except json.JSONDecodeError as exc:
        raise DataError(f"{directory}: unreadable JSON ({exc})") from exc
    return EmbeddingTable(ids=list(ids), vectors=vectors.astype(np.float32, copy=False), metadata=metadata)
