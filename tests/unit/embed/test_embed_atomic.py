"""The embedding output directory: atomic, sealed, verified at load; the cache survives (issue 15)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from newsrec.atomic import MANIFEST_FILE, PAUSE_ENV
from newsrec.embed.config import PrecomputeConfig
from newsrec.embed.precompute import precompute
from newsrec.embed.store import VECTORS_FILE, EmbeddingTable, load_embeddings, save_embeddings
from newsrec.errors import DataError

_SAVE_B = (
    "import sys, numpy as np; from pathlib import Path; "
    "from newsrec.embed.store import EmbeddingTable, save_embeddings; "
    "save_embeddings(Path(sys.argv[1]), EmbeddingTable(['N1', 'N2'], np.full((2, 3), 7, np.float32)))"
)


def _table_a(out: Path) -> EmbeddingTable:
    table = EmbeddingTable(["N1", "N2"], np.arange(6, dtype=np.float32).reshape(2, 3), {"run": "a"})
    save_embeddings(out, table)
    (out / "cache").mkdir()
    (out / "cache" / "embeddings.sqlite").write_bytes(b"cached vectors")
    return table


def test_sigkill_while_saving_keeps_the_old_table_and_the_cache(tmp_path: Path) -> None:
    out = tmp_path / "emb"
    old = _table_a(out)
    env = {**os.environ, PAUSE_ENV: "embed-commit"}
    cmd = [sys.executable, "-c", _SAVE_B, str(out)]
    proc = subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    line = proc.stderr.readline()
    assert "paused at embed-commit" in line, line + proc.stderr.read()
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    got = load_embeddings(out)
    np.testing.assert_array_equal(got.vectors, old.vectors)
    assert got.metadata == {"run": "a"} and (out / "cache" / "embeddings.sqlite").is_file()
    assert len(list(tmp_path.glob(".emb.partial-*"))) == 1

    save_embeddings(out, EmbeddingTable(["N1"], np.ones((1, 3), np.float32)))
    assert load_embeddings(out).ids == ["N1"]
    assert (out / "cache" / "embeddings.sqlite").read_bytes() == b"cached vectors"  # carried over
    assert [p.name for p in tmp_path.iterdir()] == ["emb"]


def test_an_edited_or_unsealed_table_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "emb"
    _table_a(out)
    raw = bytearray((out / VECTORS_FILE).read_bytes())
    raw[-1] ^= 1
    (out / VECTORS_FILE).write_bytes(bytes(raw))
    with pytest.raises(DataError, match=r"vectors\.npy: sha256 .* differs"):
        load_embeddings(out)
    (out / MANIFEST_FILE).unlink()
    with pytest.raises(DataError, match=r"manifest\.json: missing: .*run the same `newsrec embed` again"):
        load_embeddings(out)


def test_precompute_refuses_a_news_file_without_usable_rows(tmp_path: Path) -> None:
    news = tmp_path / "news.tsv"
    news.write_bytes(bytes(range(256)) * 20)
    with pytest.raises(DataError, match=r"news\.tsv: no usable news rows"):
        precompute([news], PrecomputeConfig(progress=False), tmp_path / "emb")
    assert not (tmp_path / "emb").exists()
    with pytest.raises(DataError, match="refusing to write an empty table"):
        save_embeddings(tmp_path / "emb", EmbeddingTable([], np.zeros((0, 0), np.float32)))
