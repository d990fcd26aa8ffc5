"""`newsrec registry list|show|set-current`: inspect and flip model versions in a registry."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from newsrec.errors import NewsrecError

app = typer.Typer(help="Inspect and flip model versions in a registry.", no_args_is_help=True)
_out = Console()
_err = Console(stderr=True, soft_wrap=True)  # error messages name paths: never wrap them


@app.command("list")
def registry_list(
    root: Annotated[Path, typer.Option(help="registry root")],
    name: Annotated[str | None, typer.Option(help="model name (default: all)")] = None,
) -> None:
    """Versions per model, with the current one marked."""
    from newsrec.registry import Registry

    reg = Registry(root)
    table = Table(title=f"registry {root}")
    for col in ("model", "version", "current", "created", "collection"):
        table.add_column(col)
    for model in [name] if name else reg.list_models():
        current = reg.current(model)
        for version in reg.list_versions(model):
            m = reg.resolve(model, version)
            coll = m.index.collection if m.index else ""
            table.add_row(model, version, "*" if version == current else "", m.created_at, coll)
    _out.print(table)


@app.command("show")
def registry_show(
    root: Annotated[Path, typer.Option(help="registry root")],
    name: str = typer.Argument(..., help="model name"),
    version: str | None = typer.Argument(None, help="version (default: current)"),
    verify: Annotated[bool, typer.Option(help="recompute artifact checksums")] = True,
) -> None:
    """Print a version's manifest (and verify its checksums)."""
    from newsrec.registry import Registry

    try:
        m = Registry(root).resolve(name, version)
        if verify:
            m.verify()
    except NewsrecError as exc:
        _err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None
    _out.print_json(m.model_dump_json())
    if verify:
        _out.print("[green]checksums OK[/green]")


@app.command("set-current")
def registry_set_current(
    root: Annotated[Path, typer.Option(help="registry root")],
    name: str = typer.Argument(..., help="model name"),
    version: str = typer.Argument(..., help="version to make current"),
) -> None:
    """Atomically point CURRENT at VERSION."""
    from newsrec.registry import Registry

    try:
        Registry(root).set_current(name, version)
    except NewsrecError as exc:
        _err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None
    _out.print(f"{name}: current = {version}")
