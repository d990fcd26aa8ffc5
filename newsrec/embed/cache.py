"""Content-addressed, crash-safe vector cache: SQLite in WAL mode, raw float32 bytes.

Key = sha256 of provider, model, requested dimension and the exact text, so a text is
paid for once per model no matter how many news ids or runs carry it. Each batch is
one transaction (vectors + a ledger row of the tokens billed for it) committed with
`synchronous=FULL`: once `put_batch` returns, a `kill -9` cannot lose the batch.
"""

from __future__ import annotations

import hashlib
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from newsrec.errors import DataError

CACHE_FILE = "embeddings.sqlite"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS vectors (key TEXT PRIMARY KEY, dim INTEGER NOT NULL, vec BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS ledger (
  id INTEGER PRIMARY KEY AUTOINCREMENT, ts REAL NOT NULL, provider TEXT NOT NULL,
  model TEXT NOT NULL, texts INTEGER NOT NULL, tokens INTEGER NOT NULL);
"""


def cache_key(provider: str, model: str, dimension: int | None, text: str) -> str:
    """Stable key; a NUL separates fields so no two field tuples hash the same input."""
    h = hashlib.sha256()
    for part in (provider, model, "native" if dimension is None else str(dimension), text):
        h.update(part.encode("utf-8"))
        h.update(b"\0")
    return h.hexdigest()


@dataclass(frozen=True)
class LedgerTotals:
    batches: int
    texts: int
    tokens: int


class EmbeddingCache:
    """Thread-safe; one connection guarded by a lock (writes are per batch, so contention is low)."""

    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.path = directory / CACHE_FILE
        try:
            self._conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=FULL")
            self._conn.executescript(_SCHEMA)
        except sqlite3.DatabaseError as exc:
            raise DataError(f"{self.path}: not a usable embedding cache ({exc})") from exc
        self._lock = threading.Lock()

    def get_many(self, keys: list[str]) -> dict[str, np.ndarray]:
        found: dict[str, np.ndarray] = {}
        with self._lock:
            for start in range(0, len(keys), 500):  # stay under SQLite's bound-variable limit
                chunk = keys[start : start + 500]
                marks = ",".join("?" * len(chunk))
                rows = self._conn.execute(f"SELECT key, dim, vec FROM vectors WHERE key IN ({marks})", chunk)
                for key, dim, blob in rows:
                    vec = np.frombuffer(blob, dtype="<f4")
                    if vec.shape[0] != dim:
                        raise DataError(f"{self.path}: corrupt vector for key {key[:12]}")
                    found[key] = vec.astype(np.float32)
        return found

    def put_batch(
        self, keys: list[str], vectors: np.ndarray, *, provider: str, model: str, tokens: int
    ) -> None:
        """Store one batch and its billed tokens atomically and durably."""
        vecs = np.ascontiguousarray(vectors, dtype="<f4")
        rows = [(k, int(v.shape[0]), v.tobytes()) for k, v in zip(keys, vecs, strict=True)]
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                self._conn.executemany(
                    "INSERT OR REPLACE INTO vectors (key, dim, vec) VALUES (?, ?, ?)", rows
                )
                self._conn.execute(
                    "INSERT INTO ledger (ts, provider, model, texts, tokens) VALUES (?, ?, ?, ?, ?)",
                    (time.time(), provider, model, len(rows), int(tokens)),
                )
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise

    def ledger(self, provider: str | None = None, model: str | None = None) -> LedgerTotals:
        """Everything billed into this cache so far (all runs), optionally for one model."""
        sql = "SELECT COUNT(*), COALESCE(SUM(texts), 0), COALESCE(SUM(tokens), 0) FROM ledger WHERE 1=1"
        args: list[str] = []
        if provider:
            sql, args = sql + " AND provider = ?", [*args, provider]
        if model:
            sql, args = sql + " AND model = ?", [*args, model]
        with self._lock:
            batches, texts, tokens = self._conn.execute(sql, args).fetchone()
        return LedgerTotals(int(batches), int(texts), int(tokens))

    def __len__(self) -> int:
        with self._lock:
            return int(self._conn.execute("SELECT COUNT(*) FROM vectors").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> EmbeddingCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
