"""On-disk format of a news embedding table: vectors.npy + ids.json + metadata.json.

No pickle: `np.load(..., allow_pickle=False)` and plain JSON.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from newsrec.errors import DataError

VECTORS_FILE = "vectors.npy"
IDS_FILE = "ids.json"
METADATA_FILE = "metadata.json"


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
    """Write the table; files are written to temporary names and renamed, so a crash
    never leaves a half-written table behind."""
    out_dir.mkdir(parents=True, exist_ok=True)
    vectors = np.ascontiguousarray(table.vectors, dtype=np.float32)
    tmp_vec = out_dir / (VECTORS_FILE + ".tmp.npy")
    np.save(tmp_vec, vectors, allow_pickle=False)
    tmp_ids = out_dir / (IDS_FILE + ".tmp")
    tmp_ids.write_text(json.dumps(table.ids))
    tmp_meta = out_dir / (METADATA_FILE + ".tmp")
    tmp_meta.write_text(json.dumps(table.metadata, indent=2, sort_keys=True))
    tmp_vec.replace(out_dir / VECTORS_FILE)
    tmp_ids.replace(out_dir / IDS_FILE)
    tmp_meta.replace(out_dir / METADATA_FILE)


def load_embeddings(directory: Path) -> EmbeddingTable:
    """Read a table written by `save_embeddings`; errors name the missing or bad file."""
    for name in (VECTORS_FILE, IDS_FILE, METADATA_FILE):
        if not (directory / name).is_file():
            raise DataError(f"{directory / name}: missing (not an embedding directory?)")
    vectors = np.load(directory / VECTORS_FILE, allow_pickle=False)
    try:
        ids = json.loads((directory / IDS_FILE).read_text())
        metadata = json.loads((directory / METADATA_FILE).read_text())
    except json.JSONDecodeError as exc:
        raise DataError(f"{directory}: unreadable JSON ({exc})") from exc
    return EmbeddingTable(ids=list(ids), vectors=vectors.astype(np.float32, copy=False), metadata=metadata)
