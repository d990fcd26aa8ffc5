"""`newsrec registry list|show|set-current` (and its alias `newsrec pipeline registry`)."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from newsrec.cli import _LIBRARY_COMMANDS
from newsrec.cli.registry_cmd import app as registry_app
from newsrec.registry import Registry, publish
from pipelines.cli import app as pipeline_app


def test_registry_is_a_library_command() -> None:
    assert ("newsrec.cli.registry_cmd", "app", "registry") in _LIBRARY_COMMANDS


@pytest.mark.parametrize("prefix", [[], ["registry"]], ids=["newsrec-registry", "pipeline-alias"])
def test_registry_commands(tmp_path: Path, prefix: list[str]) -> None:
    app = pipeline_app if prefix else registry_app
    art = tmp_path / "a.json"
    art.write_text("{}")
    emb = {"provider": "local", "model": "m"}
    for v in ("v1", "v2"):
        publish(tmp_path / "reg", "tt", v, {"cfg": art}, {"k": 1}, {"auc": 0.5}, emb, set_current=v == "v1")
    runner = CliRunner()
    listed = runner.invoke(app, [*prefix, "list", "--root", str(tmp_path / "reg")])
    assert listed.exit_code == 0 and "v1" in listed.output and "v2" in listed.output
    flipped = runner.invoke(app, [*prefix, "set-current", "--root", str(tmp_path / "reg"), "tt", "v2"])
    assert flipped.exit_code == 0 and Registry(tmp_path / "reg").current("tt") == "v2"
    shown = runner.invoke(app, [*prefix, "show", "--root", str(tmp_path / "reg"), "tt"])
    assert shown.exit_code == 0 and '"version": "v2"' in shown.output and "checksums OK" in shown.output
    (tmp_path / "reg/models/tt/v2/cfg/a.json").write_text('{"tampered": 1}')
    bad = runner.invoke(app, [*prefix, "show", "--root", str(tmp_path / "reg"), "tt"])
    assert bad.exit_code == 2 and "a.json: checksum mismatch" in bad.output
    missing = runner.invoke(app, [*prefix, "set-current", "--root", str(tmp_path / "reg"), "tt", "v9"])
    assert missing.exit_code == 2 and "v9 not found" in missing.output
