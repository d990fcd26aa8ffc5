"""A killed retrain leaves the previous run loadable; edited artifacts are refused (issue 15, defect 3)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from newsrec.atomic import MANIFEST_FILE, PAUSE_ENV
from newsrec.errors import DataError
from newsrec.models import load_serving
from newsrec.models.artifact import verify_serving
from newsrec.models.towers import ModelConfig
from newsrec.train.config import RankerConfig, TrainConfig
from newsrec.train.ranker import train_ranker
from newsrec.train.run import train_run
from newsrec.train.toy import write_toy_dataset
from newsrec.train.two_tower import train_two_tower

torch.set_num_threads(1)
CLI = [sys.executable, "-c", "from newsrec.cli import main; main()"]


@pytest.fixture(scope="module")
def toy(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return write_toy_dataset(tmp_path_factory.mktemp("toy"))


def _cfg(data: Path, emb: Path, out: Path, dim: int) -> TrainConfig:
    return TrainConfig(
        data=data, embeddings=emb, out=out, epochs=1, batch_size=64, progress=False,
        model=ModelConfig(output_dim=dim),
    )  # fmt: skip


def _paused(cmd: list[str], stage: str) -> subprocess.Popen[str]:
    """Start `cmd` with the fault hook set; return once it says it paused at `stage`."""
    env = {**os.environ, PAUSE_ENV: stage, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    seen = []
    for line in proc.stderr:  # ends at EOF if the process finishes without pausing
        seen.append(line)
        if f"paused at {stage}" in line:
            return proc
    proc.wait(timeout=60)
    raise AssertionError(f"never paused at {stage} (exit {proc.returncode}): {''.join(seen)[-2000:]}")


def _kill(proc: subprocess.Popen[str]) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL


def _partials(parent: Path) -> list[Path]:
    return [p for p in parent.iterdir() if ".partial-" in p.name]


def test_retrain_killed_in_the_ranker_stage_keeps_the_old_run(toy: tuple[Path, Path], tmp_path: Path) -> None:
    data, emb = toy
    run = tmp_path / "run"
    train_run(_cfg(data, emb, run, 16), RankerConfig(run=run, data=data, epochs=1))
    before = load_serving(run / "serving")
    assert before.dim == 16 and before.ranker is not None

    args = ["train", "--data", str(data), "--out", str(run), "--embeddings", str(emb)]
    args += ["--epochs", "1", "--output-dim", "8", "--batch-size", "64", "--threads", "1"]
    _kill(_paused([*CLI, *args], "ranker-save"))  # new towers and ranker written, not committed

    after = load_serving(run / "serving")  # verifies every file against the manifest
    assert after.dim == 16 and after.ranker is not None
    assert after.config["ranker"] is not None and after.model_version == before.model_version
    assert json.loads((run / "config.json").read_text())["model"]["output_dim"] == 16
    np.testing.assert_array_equal(after.news_vectors(), before.news_vectors())
    assert len(_partials(tmp_path)) == 1  # the killed run's stage, never loaded

    train_run(_cfg(data, emb, run, 8), RankerConfig(run=run, data=data, epochs=1))
    again = load_serving(run / "serving")
    assert again.dim == 8 and again.ranker is not None and not _partials(tmp_path)


def test_ranker_step_killed_mid_write_leaves_serving_intact(toy: tuple[Path, Path], tmp_path: Path) -> None:
    data, emb = toy
    run = tmp_path / "run"
    train_two_tower(_cfg(data, emb, run, 8))
    code = (
        "import sys; from pathlib import Path; from newsrec.train.config import RankerConfig; "
        "from newsrec.train.ranker import train_ranker; "
        "train_ranker(RankerConfig(run=Path(sys.argv[1]), data=Path(sys.argv[2]), epochs=1))"
    )
    _kill(_paused([sys.executable, "-c", code, str(run), str(data)], "ranker-save"))
    model = load_serving(run / "serving")
    assert model.ranker is None and model.config["ranker"] is None
    assert not (run / "serving" / "ranker.safetensors").exists()
    assert len(_partials(run)) == 1

    train_ranker(RankerConfig(run=run, data=data, epochs=1))  # through a copy swapped in
    assert load_serving(run / "serving").ranker is not None and not _partials(run)


@pytest.fixture(scope="module")
def sealed(toy: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    data, emb = toy
    run = tmp_path_factory.mktemp("sealed") / "run"
    train_run(_cfg(data, emb, run, 8), RankerConfig(run=run, data=data, epochs=1))
    return run / "serving"


def _copy(serving: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(serving, tmp_path / "serving"))


def test_a_flipped_byte_is_refused_naming_the_file(sealed: Path, tmp_path: Path) -> None:
    d = _copy(sealed, tmp_path)
    raw = bytearray((d / "news_vectors.npy").read_bytes())
    raw[-1] ^= 0xFF
    (d / "news_vectors.npy").write_bytes(bytes(raw))
    with pytest.raises(DataError, match=r"news_vectors\.npy: sha256 .* differs"):
        load_serving(d)


def test_a_hand_edited_config_is_refused(sealed: Path, tmp_path: Path) -> None:
    d = _copy(sealed, tmp_path)
    cfg = json.loads((d / "config.json").read_text())
    cfg["ranker"] = None  # what the killed retrain used to leave
    (d / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(DataError, match=r"config\.json: .*(partial or edited|differs)"):
        load_serving(d)


def test_a_partial_artifact_without_manifest_is_refused(sealed: Path, tmp_path: Path) -> None:
    d = _copy(sealed, tmp_path)
    (d / MANIFEST_FILE).unlink()
    with pytest.raises(DataError, match=r"manifest\.json: missing: .* partial serving artifact"):
        load_serving(d)


def test_files_written_before_sealing_are_covered_without_listing_them(sealed: Path) -> None:
    manifest = json.loads((sealed / MANIFEST_FILE).read_text())
    on_disk = {p.name for p in sealed.iterdir() if p.name != MANIFEST_FILE}
    assert set(manifest["files"]) == on_disk and manifest["format"] == 2
    verify_serving(sealed)
