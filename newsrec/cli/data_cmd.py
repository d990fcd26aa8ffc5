"""`newsrec data ...`: synthetic MIND, validation, and MIND from the feedback stream."""

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


def _stream_bound(text: str, option: str, end: bool) -> str:
    """A stream id for XRANGE: '' (open), a stream id as is, or an ISO 8601 time (UTC when
    it names no zone) as its millisecond id."""
    from datetime import UTC, datetime

    if not text:
        return "+" if end else "-"
    if text[0].isdigit() and "-" in text and text.replace("-", "").isdigit():
        return text
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter(
            f"{text!r}: not an ISO 8601 time or a stream id", param_hint=option
        ) from None
    when = when if when.tzinfo else when.replace(tzinfo=UTC)
    return str(int(when.timestamp() * 1000))


@app.command("from-events")
def from_events(
    out: Path = typer.Option(
        ..., "--out", help="dataset root to write (train/, and dev/ when it gets impressions)"
    ),
    news: list[Path] = typer.Option(
        ..., "--news", help="catalogue news.tsv (repeatable): the articles' rows"
    ),
    redis_url: str = typer.Option(
        "", "--redis-url", envvar="NEWSREC_REDIS_URL", help="the gateway's feedback Redis"
    ),
    stream: str = typer.Option("newsrec:feedback", "--stream", help="the feedback stream key"),
    group: str = typer.Option(
        "", "--group", help="consumer group: export what it has not acknowledged, then acknowledge it"
    ),
    consumer: str = typer.Option("export", "--consumer", help="consumer name inside --group"),
    since: str = typer.Option("", "--since", help="range mode: first event (ISO 8601 time or stream id)"),
    until: str = typer.Option("", "--until", help="range mode: last event (ISO 8601 time or stream id)"),
    dev_fraction: float = typer.Option(0.2, "--dev-fraction", help="latest share of impressions put in dev/"),
    dev_after: str = typer.Option("", "--dev-after", help="impressions at or after this ISO time go to dev/"),
    skip_unknown: bool = typer.Option(
        False, "--skip-unknown", help="drop news ids missing from --news (counted) instead of failing"
    ),
    as_json: bool = typer.Option(False, "--json", help="print the summary as JSON"),
) -> None:
    """Turn the gateway's feedback stream into a MIND dataset (behaviors.tsv, news.tsv)."""
    from datetime import datetime

    import redis

    from newsrec.data.events import export
    from newsrec.errors import NewsrecError

    if not redis_url:
        raise typer.BadParameter("set --redis-url or NEWSREC_REDIS_URL", param_hint="--redis-url")
    if group and (since or until):
        raise typer.BadParameter("--since/--until read a range; --group reads what is unacknowledged")
    try:
        cut = datetime.fromisoformat(dev_after).replace(tzinfo=None) if dev_after else None
    except ValueError:
        raise typer.BadParameter(f"{dev_after!r}: not an ISO 8601 time", param_hint="--dev-after") from None
    client = redis.Redis.from_url(redis_url, socket_timeout=10, socket_connect_timeout=5)
    try:
        summary = export(
            client,
            stream,
            out,
            news,
            group=group or None,
            consumer=consumer,
            start=_stream_bound(since, "--since", end=False),
            end=_stream_bound(until, "--until", end=True),
            dev_fraction=dev_fraction,
            dev_after=cut,
            skip_unknown=skip_unknown,
        )
    except NewsrecError as exc:
        print(f"newsrec data from-events: {exc}", file=sys.stderr)
        raise typer.Exit(1) from None
    except redis.RedisError as exc:
        print(f"newsrec data from-events: redis {redis_url}: {type(exc).__name__}: {exc}", file=sys.stderr)
        raise typer.Exit(1) from None
    finally:
        client.close()
    if as_json:
        typer.echo(json.dumps(summary.to_dict(), indent=2, sort_keys=True))
        return
    j = summary.join
    splits = ", ".join(f"{name} {count:,}" for name, count in summary.splits.items())
    typer.echo(
        f"wrote {out}: {j.impressions:,} impressions ({splits}), {j.clicks:,} clicks "
        f"from {j.events:,} events "
        f"({j.duplicate_events:,} duplicate, {j.clicks_without_impression:,} clicks without impression, "
        f"{summary.unknown_ids_skipped:,} unknown ids skipped, {summary.acknowledged:,} acknowledged)"
    )
