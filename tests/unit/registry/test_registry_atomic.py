"""Registry versions: a killed publish is never a version; sealed sources are verified (issue 15)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from newsrec.atomic import MANIFEST_FILE, PAUSE_ENV, seal
from newsrec.errors import DataError, NotFound
from newsrec.models import load_serving
from newsrec.models.towers import ModelConfig
from newsrec.registry import Registry, publish
from newsrec.train.config import TrainConfig
from newsrec.train.toy import write_toy_dataset
from newsrec.train.two_tower import train_two_tower

EMB = {"provider": "local", "model": "m"}
_PUBLISH = (
    "import sys; from pathlib import Path; from newsrec.registry import publish; "
    "publish(sys.argv[1], 'tt', 'v2', {'serving': Path(sys.argv[2])}, {}, {}, "
    "{'provider': 'local', 'model': 'm'})"
)


def _serving(d: Path) -> Path:
    d.mkdir(parents=True)
    (d / "weights.bin").write_bytes(b"w" * 100)
    seal(d, "serving", 2)
    return d


def test_killed_publish_is_never_listed_and_is_cleaned_by_the_next(tmp_path: Path) -> None:
    reg_root, src = tmp_path / "reg", _serving(tmp_path / "serving")
    publish(reg_root, "tt", "v1", {"serving": src}, {}, {}, EMB, set_current=True)
    env = {**os.environ, PAUSE_ENV: "publish-commit"}
    cmd = [sys.executable, "-c", _PUBLISH, str(reg_root), str(src)]
    proc = subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    line = proc.stderr.readline()
    assert "paused at publish-commit" in line, line + proc.stderr.read()
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    reg = Registry(reg_root)
    leftovers = list((reg_root / "models" / "tt").glob(".v2.partial-*"))
    assert len(leftovers) == 1 and (leftovers[0] / MANIFEST_FILE).is_file()  # complete, not renamed
    assert reg.list_versions("tt") == ["v1"] and reg.current("tt") == "v1"
    with pytest.raises(NotFound):
        reg.resolve("tt", "v2")
    publish(reg_root, "tt", "v2", {"serving": src}, {}, {}, EMB)
    assert reg.list_versions("tt") == ["v1", "v2"]
    assert not list((reg_root / "models" / "tt").glob(".*"))


def test_publish_refuses_an_edited_sealed_source(tmp_path: Path) -> None:
    src = _serving(tmp_path / "serving")
    (src / "weights.bin").write_bytes(b"x" * 100)
    with pytest.raises(DataError, match=r"weights\.bin: sha256 .* differs"):
        publish(tmp_path / "reg", "tt", "v1", {"serving": src}, {}, {}, EMB)
    assert Registry(tmp_path / "reg").list_versions("tt") == []


def test_unsealed_serving_of_an_older_version_loads_by_the_registry_checksums(tmp_path: Path) -> None:
    data, emb = write_toy_dataset(tmp_path / "toy")
    cfg = TrainConfig(
        data=data, embeddings=emb, out=tmp_path / "run", epochs=1, batch_size=64, progress=False,
        max_train_impressions=100, model=ModelConfig(output_dim=8, use_gnn=False),
    )  # fmt: skip
    serving = train_two_tower(cfg).serving_dir
    old = Path(shutil.copytree(serving, tmp_path / "old-serving"))
    (old / MANIFEST_FILE).unlink()  # as published before serving dirs were sealed
    m = publish(tmp_path / "reg", "tt", "v1", {"serving": old}, {}, {}, EMB)
    with pytest.raises(DataError, match="partial serving artifact"):
        load_serving(old)  # outside a registry nothing vouches for it
    art = m.artifact_dir("serving")
    assert load_serving(art).dim == 8
    (art / "popularity.npy").write_bytes((art / "popularity.npy").read_bytes()[:-4] + b"\0\0\0\1")
    with pytest.raises(DataError, match=r"popularity\.npy: checksum mismatch"):
        load_serving(art)
