"""One validation gate: every command that reads data refuses what `data validate` refuses
(issue 15, defect 2): exit 1, one stderr line with the same file:line reason, nothing written."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from newsrec.atomic import seal
from newsrec.cli import _register_all, app
from newsrec.data.validate import (
    UnusableData,
    require_embeddings,
    require_usable,
    require_usable_news,
    validate_dataset,
)
from newsrec.embed.store import EMBEDDINGS_KIND, IDS_FILE, METADATA_FILE, VECTORS_FILE
from newsrec.errors import DataError

_register_all()
runner = CliRunner()


def _dataset(mind_fixtures: Path, root: Path) -> Path:
    for split in ("train", "dev"):
        shutil.copytree(mind_fixtures / "good", root / split)
    return root


@pytest.fixture(params=["empty-news", "binary-news", "garbage-behaviors"])
def unusable(request: pytest.FixtureRequest, mind_fixtures: Path, tmp_path: Path) -> Path:
    root = _dataset(mind_fixtures, tmp_path / "data")
    if request.param == "empty-news":
        (root / "train" / "news.tsv").write_text("")
    elif request.param == "binary-news":
        (root / "train" / "news.tsv").write_bytes(bytes(range(256)) * 40)
    else:
        (root / "train" / "behaviors.tsv").write_bytes(os.urandom(3000).replace(b"\t", b" "))
    return root


def _table(d: Path, ids: list[str], vectors: np.ndarray) -> Path:
    """A sealed embedding table written by hand (save_embeddings refuses empty ones)."""
    d.mkdir(parents=True)
    np.save(d / VECTORS_FILE, vectors, allow_pickle=False)
    (d / IDS_FILE).write_text(json.dumps(ids))
    (d / METADATA_FILE).write_text("{}")
    seal(d, EMBEDDINGS_KIND, 1, closed=False)
    return d


COMMANDS = {
    "train": lambda data, out: ["train", "--data", data, "--out", out, "--no-llm"],
    "kg": lambda data, out: ["kg", "--data", data, "--out", out],
    "ablation": lambda data, out: ["ablation", "--data", data, "--out", out],
    "evaluate": lambda data, out: ["evaluate", "--run", out, "--data", data, "--out", out + "/report"],
}


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_commands_refuse_what_validate_refuses(unusable: Path, tmp_path: Path, command: str) -> None:
    reason = validate_dataset(unusable).reason
    assert reason.startswith(str(unusable / "train"))  # names the file
    out = tmp_path / "out"
    res = runner.invoke(app, COMMANDS[command](str(unusable), str(out)))
    assert res.exit_code == 1, res.output
    assert res.stderr == f"newsrec {command}: not usable: {reason}\n"
    assert not out.exists()  # refused before any work


def test_train_refused_in_a_real_process_without_traceback(unusable: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    cmd = [sys.executable, "-c", "from newsrec.cli import main; main()", "train", "--data", str(unusable)]
    res = subprocess.run([*cmd, "--out", str(out), "--no-llm"], capture_output=True, text=True, timeout=300)
    assert res.returncode == 1
    assert res.stderr.count("\n") == 1 and "Traceback" not in res.stderr
    assert res.stderr == f"newsrec train: not usable: {validate_dataset(unusable).reason}\n"
    assert not out.exists() and not list(tmp_path.glob(".run.partial-*"))


def test_embed_refuses_a_news_file_without_usable_rows(tmp_path: Path) -> None:
    news = tmp_path / "news.tsv"
    news.write_bytes(bytes(range(256)) * 40)
    out = tmp_path / "emb"
    res = runner.invoke(app, ["embed", "--news", str(news), "--out", str(out), "--quiet"])
    assert res.exit_code == 1
    assert res.stderr.startswith(f"newsrec embed: not usable: {news}: ") and res.stderr.count("\n") == 1
    assert not out.exists()
    news.write_text("")
    with pytest.raises(UnusableData, match="news.tsv: no usable news rows"):
        require_usable_news([news])


def test_require_usable_returns_the_report_of_good_data(mind_fixtures: Path, tmp_path: Path) -> None:
    assert require_usable(_dataset(mind_fixtures, tmp_path / "d")).usable


def test_embedding_tables_that_train_nothing_are_refused(mind_fixtures: Path, tmp_path: Path) -> None:
    data = _dataset(mind_fixtures, tmp_path / "data")
    ids = sorted({line.split("\t")[0] for line in (data / "train" / "news.tsv").read_text().splitlines()})
    with pytest.raises(DataError, match=r"vectors\.npy: empty or zero-dimensional \(shape \(0, 0\)\)"):
        require_embeddings(_table(tmp_path / "e0", [], np.zeros((0, 0), np.float32)), data)
    with pytest.raises(DataError, match=r"vectors\.npy: empty or zero-dimensional \(shape \(\d+, 0\)\)"):
        require_embeddings(_table(tmp_path / "e1", ids, np.zeros((len(ids), 0), np.float32)), data)
    nan = np.ones((len(ids), 4), np.float32)
    nan[1, 2] = np.nan
    with pytest.raises(UnusableData, match=r"vectors\.npy: row 1 .* not finite"):
        require_embeddings(_table(tmp_path / "e2", ids, nan), data)
    part = _table(tmp_path / "e3", ids[:2], np.ones((2, 4), np.float32))
    with pytest.raises(UnusableData, match=r"ids\.json: 3 of 5 news ids of .* have no vector"):
        require_embeddings(part, data)
    require_embeddings(_table(tmp_path / "e4", ids, np.ones((len(ids), 4), np.float32)), data)


def test_train_refuses_an_embedding_table_naming_the_file(mind_fixtures: Path, tmp_path: Path) -> None:
    data = _dataset(mind_fixtures, tmp_path / "data")
    emb = _table(tmp_path / "emb", ["N1"], np.ones((1, 4), np.float32))
    out = tmp_path / "run"
    res = runner.invoke(app, ["train", "--data", str(data), "--out", str(out), "--embeddings", str(emb)])
    assert res.exit_code == 1 and res.stderr.startswith(f"newsrec train: not usable: {emb / IDS_FILE}: ")
    assert not out.exists()
