"""The `newsrec` command line: one Typer app with sub-commands.

Library commands are registered here; commands that live outside the library
(serve, recommend, pipeline) plug in through the `newsrec.cli` entry-point group,
so `newsrec/` never imports the services or pipelines.
"""

from __future__ import annotations

import importlib
import sys
from importlib.metadata import entry_points

import typer

app = typer.Typer(
    name="newsrec",
    help="News recommendation with LLM, ID and knowledge-graph embeddings.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

# (module, attribute, sub-command name or None to merge commands at top level)
_LIBRARY_COMMANDS: list[tuple[str, str, str | None]] = [
    ("newsrec.cli.data_cmd", "app", "data"),
    ("newsrec.cli.embed_cmd", "register", None),
    ("newsrec.cli.model_cmd", "register", None),
    ("newsrec.cli.registry_cmd", "app", "registry"),
]


@app.callback(invoke_without_command=True)
def _root(
    version: bool = typer.Option(False, "--version", help="print the version and exit", is_eager=True),
) -> None:
    if version:
        from newsrec import __version__

        typer.echo(f"newsrec {__version__}")
        raise typer.Exit()


def _register_all() -> None:
    for module_name, attr, name in _LIBRARY_COMMANDS:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name == module_name:  # that command group is not built yet
                continue
            raise
        _attach(getattr(module, attr), name)
    for ep in entry_points(group="newsrec.cli"):
        try:
            plugin = ep.load()
        except ImportError as exc:
            # A plugin that cannot import must not take the whole CLI down.
            print(f"newsrec: command group {ep.name!r} unavailable: {exc}", file=sys.stderr)
            continue
        _attach(plugin, None if ep.name == "services" else ep.name)


def _attach(obj: object, name: str | None) -> None:
    if isinstance(obj, typer.Typer):
        app.add_typer(obj, name=name)
    elif callable(obj):
        obj(app)  # a register(app) function adding top-level commands
    else:
        raise TypeError(f"cannot attach {obj!r} to the CLI")


def main() -> None:
    """Console-script entry point."""
    _register_all()
    app()
