"""validate_dataset and `newsrec data validate|synth` through Typer's CliRunner."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from typer.testing import CliRunner

from newsrec.cli.data_cmd import app
from newsrec.data.validate import validate_dataset

runner = CliRunner()


def test_good_fixture_counts_and_coverage(mind_fixtures: Path) -> None:
    report = validate_dataset(mind_fixtures / "good")
    assert report.usable and report.reason == ""
    (split,) = report.splits
    assert split.counts["news"] == 5 and split.counts["impressions"] == 4 and split.counts["users"] == 4
    assert (
        split.counts["clicks"] == 5 and split.counts["entities"] == 6 and split.counts["entity_vectors"] == 4
    )
    # 6 of the 7 history ids are in news.tsv (N99999 is not); every candidate is.
    assert split.coverage == {"history": round(6 / 7, 6), "impressions": 1.0}
    assert split.bad_rows == {}


def test_bad_fixture_groups_reasons_with_lines(mind_fixtures: Path) -> None:
    report = validate_dataset(mind_fixtures / "bad")
    assert not report.usable
    split = report.splits[0]
    news = str(mind_fixtures / "bad" / "news.tsv")
    behaviors = str(mind_fixtures / "bad" / "behaviors.tsv")
    assert split.bad_rows["column_count"] == {"count": 2, "first": [f"{news}:2", f"{behaviors}:5"]}
    assert split.bad_rows["bad_label"] == {"count": 1, "first": [f"{behaviors}:2"]}
    assert split.bad_rows["bad_json"]["first"] == [f"{news}:3"]
    assert "70.59%" in report.reason and "column_count" in report.reason
    assert validate_dataset(mind_fixtures / "bad", max_bad_share=0.9).usable


def test_unusable_inputs_name_the_path(mind_fixtures: Path, tmp_path: Path) -> None:
    missing = validate_dataset(tmp_path / "absent")
    assert not missing.usable and str(tmp_path / "absent") in missing.reason
    split = tmp_path / "root" / "train"
    shutil.copytree(mind_fixtures / "good", split)
    shutil.copytree(mind_fixtures / "good", tmp_path / "root" / "dev")
    assert validate_dataset(tmp_path / "root").usable
    assert [s.name for s in validate_dataset(tmp_path / "root").splits] == ["train", "dev"]
    (split / "behaviors.tsv").unlink()
    report = validate_dataset(tmp_path / "root")
    assert not report.usable and str(split / "behaviors.tsv") in report.reason
    (split / "behaviors.tsv").write_text((mind_fixtures / "good" / "behaviors.tsv").read_text())
    (split / "news.tsv").write_text("")
    report = validate_dataset(tmp_path / "root")
    assert not report.usable and "no usable news" in report.reason


def test_cli_validate_exit_codes_and_json(mind_fixtures: Path) -> None:
    ok = runner.invoke(app, ["validate", str(mind_fixtures / "good")])
    assert ok.exit_code == 0, ok.output
    assert "usable" in ok.stdout and "85.7%" in ok.stdout
    bad = runner.invoke(app, ["validate", str(mind_fixtures / "bad")])
    assert bad.exit_code == 1
    assert bad.stderr.count("\n") == 1 and "not usable" in bad.stderr and "column_count" in bad.stderr
    assert "bad_label" in bad.stdout  # the table of reasons
    relaxed = runner.invoke(app, ["validate", str(mind_fixtures / "bad"), "--max-bad-share", "0.8", "--json"])
    assert relaxed.exit_code == 0
    data = json.loads(relaxed.stdout)
    assert set(data) == {"root", "max_bad_share", "usable", "reason", "splits"}
    assert data["usable"] is True and data["max_bad_share"] == 0.8
    assert set(data["splits"]["bad"]) >= {"counts", "bad_rows", "bad_share", "coverage", "usable", "reason"}
    missing = runner.invoke(app, ["validate", "/nonexistent/mind"])
    assert missing.exit_code == 1 and "/nonexistent/mind" in missing.stderr


def test_cli_synth_then_validate(tmp_path: Path) -> None:
    out = tmp_path / "synth"
    res = runner.invoke(app, ["synth", "--size", "tiny", "--seed", "3", "--out", str(out), "--json"])
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout)
    assert summary["impressions"] == {"train": 1400, "dev": 600} and summary["cold_start_share"] >= 0.15
    table = runner.invoke(app, ["validate", str(out)])
    assert table.exit_code == 0 and "train" in table.stdout and "dev" in table.stdout
    assert runner.invoke(app, ["synth", "--size", "huge", "--out", str(out)]).exit_code == 2
