"""`newsrec pipeline registry list|show|set-current`."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from newsrec.registry import Registry, publish
from pipelines.cli import app


def test_registry_commands(tmp_path: Path) -> None:
    art = tmp_path / "a.json"
    art.write_text("{}")
    emb = {"provider": "local", "model": "m"}
    for v in ("v1", "v2"):
        publish(tmp_path / "reg", "tt", v, {"cfg": art}, {"k": 1}, {"auc": 0.5}, emb, set_current=v == "v1")
    runner = CliRunner()
    listed = runner.invoke(app, ["registry", "list", "--root", str(tmp_path / "reg")])
    assert listed.exit_code == 0 and "v1" in listed.output and "v2" in listed.output
    flipped = runner.invoke(app, ["registry", "set-current", "--root", str(tmp_path / "reg"), "tt", "v2"])
    assert flipped.exit_code == 0 and Registry(tmp_path / "reg").current("tt") == "v2"
    shown = runner.invoke(app, ["registry", "show", "--root", str(tmp_path / "reg"), "tt"])
    assert shown.exit_code == 0 and '"version": "v2"' in shown.output and "checksums OK" in shown.output
    (tmp_path / "reg/models/tt/v2/cfg/a.json").write_text('{"tampered": 1}')
    bad = runner.invoke(app, ["registry", "show", "--root", str(tmp_path / "reg"), "tt"])
    assert bad.exit_code == 2 and "a.json: checksum mismatch" in bad.output
    missing = runner.invoke(app, ["registry", "set-current", "--root", str(tmp_path / "reg"), "tt", "v9"])
    assert missing.exit_code == 2 and "v9 not found" in missing.output
