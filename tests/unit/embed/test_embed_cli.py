"""CLI edges that need no model: registration, config errors, missing files and keys."""

from __future__ import annotations

from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from newsrec.cli.embed_cmd import register


@pytest.fixture()
def app() -> typer.Typer:
    app = typer.Typer()
    register(app)
    return app


def test_commands_registered(app: typer.Typer) -> None:
    names = {c.name for c in app.registered_commands}
    assert names == {"embed", "embed-server"}


def test_bad_config_is_a_clear_error(app: typer.Typer, tmp_path: Path) -> None:
    res = CliRunner().invoke(app, ["embed", "--news", "x.tsv", "--out", str(tmp_path), "--batch-size", "0"])
    assert res.exit_code == 2 and "batch_size" in res.output


def test_missing_news_file_is_named(app: typer.Typer, tmp_path: Path) -> None:
    missing = tmp_path / "nope" / "news.tsv"
    res = CliRunner().invoke(app, ["embed", "--news", str(missing), "--out", str(tmp_path / "o"), "--quiet"])
    # the validation gate: exit 1 and one line, as `newsrec data validate`
    assert res.exit_code == 1 and "news.tsv: file not found" in res.output


def test_openai_without_key_says_how_to_set_it(
    app: typer.Typer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    news = tmp_path / "news.tsv"
    news.write_text("N1\tsports\tsoccer\tTitle\tAbstract\t\t[]\t[]\n")
    res = CliRunner().invoke(
        app, ["embed", "--news", str(news), "--out", str(tmp_path / "o"), "--provider", "openai"]
    )
    assert res.exit_code == 2 and "OPENAI_API_KEY" in res.output


def test_embed_server_has_no_fault_injection(app: typer.Typer) -> None:
    """Fault injection is test-only (tests/integration/embed/faulty_server.py): the product
    CLI takes no fault plan, and the server module has no FaultPlan or /admin route."""
    import newsrec.embed.server as server

    res = CliRunner().invoke(app, ["embed-server", "--faults", '{"rate_limit": 1}'])
    assert res.exit_code == 2 and "No such option" in res.output
    assert not hasattr(server, "FaultPlan") and "/admin" not in Path(server.__file__).read_text()


def test_embed_server_rejects_bad_limits(app: typer.Typer) -> None:
    res = CliRunner().invoke(app, ["embed-server", "--max-inputs", "0"])
    assert res.exit_code == 2 and "max_inputs" in res.output and "Traceback" not in res.output
