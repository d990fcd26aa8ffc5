"""`newsrec data ...`: generate synthetic MIND and validate MIND-format directories."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(help="MIND-format data: synthetic generator and validation.", no_args_is_help=True)


@app.command()
def synth(
    size: str = typer.Option(
        "tiny",
        "--size",
        help="tiny (~2k impressions), small (MIND-small scale), medium or large (MIND-large shape)",
    ),
    seed: int = typer.Option(7, "--seed", help="same seed, same bytes"),
    out: Path = typer.Option(..., "--out", help="output root; train/ and dev/ are written under it"),
    as_json: bool = typer.Option(False, "--json", help="print the summary as JSON"),
) -> None:
    """Write a synthetic MIND dataset (train/ and dev/) to OUT."""
    from newsrec.data.synth import SIZES, generate

    if size not in SIZES:
        typer.echo(f"newsrec data synth: unknown size {size!r}; choose one of {', '.join(SIZES)}", err=True)
        raise typer.Exit(2)
    summary = generate(size, seed, out, progress=size != "tiny" and not as_json)
    if as_json:
        typer.echo(json.dumps(summary.to_dict(), indent=2, sort_keys=True))
        return
    table = Table(title=f"synthetic MIND ({size}, seed {seed}) in {out}")
    table.add_column("split")
    for col in ("news", "users", "impressions", "clicks", "entities"):
        table.add_column(col, justify="right")
    for split in summary.news:
        table.add_row(
            split,
            *(
                f"{getattr(summary, col)[split]:,}"
                for col in ("news", "users", "impressions", "clicks", "entities")
            ),
        )
    console = Console()
    console.print(table)
    console.print(
        f"cold-start share of dev clicked articles: {summary.cold_start_share:.1%}; "
        f"dev users with empty history: {summary.empty_history_share:.1%}; {summary.seconds:.1f} s"
    )


@app.command()
def validate(
    path: Path = typer.Argument(
        ..., help="a split directory (news.tsv, behaviors.tsv) or a root with train/ and dev/"
    ),
    max_bad_share: float = typer.Option(
        0.01, "--max-bad-share", help="largest usable share of bad rows per split"
    ),
    as_json: bool = typer.Option(False, "--json", help="print the report as JSON"),
    show: int = typer.Option(5, "--show", help="line numbers listed per bad-row reason"),
) -> None:
    """Check a MIND-format directory; exit 0 when usable, 1 when not (reason on stderr)."""
    from newsrec.data.validate import validate_dataset

    report = validate_dataset(path, max_bad_share=max_bad_share)
    if as_json:
        typer.echo(json.dumps(report.to_dict(), indent=2, sort_keys=True))
    else:
        _print_report(report, show)
    if not report.usable:
        print(f"newsrec data validate: not usable: {report.reason}", file=sys.stderr)
        raise typer.Exit(1)


def _print_report(report: object, show: int) -> None:
    from newsrec.data.validate import ValidationReport

    assert isinstance(report, ValidationReport)
    console = Console()
    counts = Table(title=f"MIND data in {report.root}")
    counts.add_column("split")
    for col in (
        "news",
        "entities",
        "users",
        "impressions",
        "clicks",
        "history cover",
        "impr. cover",
        "bad share",
    ):
        counts.add_column(col, justify="right")
    for s in report.splits:
        c = s.counts
        if not c:  # the split could not be read at all; its reason is printed below
            counts.add_row(s.name, *("-" * 8))
            continue
        counts.add_row(
            s.name,
            *(f"{c[k]:,}" for k in ("news", "entities", "users", "impressions", "clicks")),
            f"{s.coverage['history']:.1%}",
            f"{s.coverage['impressions']:.1%}",
            f"{s.bad_share:.2%}",
        )
    if report.splits:
        console.print(counts)
    bad = Table(title="bad rows by reason")
    for col in ("split", "reason", "count", "first lines"):
        bad.add_column(col, justify="right" if col == "count" else "left")
    for s in report.splits:
        for reason, group in s.bad_rows.items():
            bad.add_row(s.name, reason, f"{group['count']:,}", ", ".join(group["first"][:show]))
    if bad.row_count:
        console.print(bad)
    status = "[green]usable[/green]" if report.usable else f"[red]not usable[/red]: {report.reason}"
    console.print(status)
