"""`newsrec pipeline run` refuses unusable data before any step runs (issue 15, defect 2)."""

from __future__ import annotations

import shutil
from pathlib import Path

from typer.testing import CliRunner

from newsrec.data.validate import validate_dataset
from pipelines.cli import app

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "mind"


def test_pipeline_run_refuses_unusable_data_before_any_step(tmp_path: Path) -> None:
    data = tmp_path / "data"
    for split in ("train", "dev"):
        shutil.copytree(FIXTURES / "good", data / split)
    (data / "train" / "news.tsv").write_text("")
    out = tmp_path / "out"
    res = CliRunner().invoke(app, ["run", "--data", str(data), "--out", str(out)])
    assert res.exit_code == 1
    assert res.stderr == f"newsrec pipeline run: not usable: {validate_dataset(data).reason}\n"
    assert "news.tsv: no usable news rows" in res.stderr
    assert not out.exists()  # no pipeline root, cache or registry
