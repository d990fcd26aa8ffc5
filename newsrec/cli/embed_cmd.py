"""`newsrec embed` (precompute news embeddings) and `newsrec embed-server`."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from newsrec.cli.gate import gate
from newsrec.errors import NewsrecError

_err = Console(stderr=True, soft_wrap=True)  # never break paths or ids across lines


def _config_error(exc: ValidationError) -> typer.BadParameter:
    parts = [f"{'.'.join(str(x) for x in e['loc'])}: {e['msg']}" for e in exc.errors()]
    return typer.BadParameter("; ".join(parts))


def embed(
    news: Annotated[list[Path], typer.Option("--news", help="news.tsv file (repeat for train and dev)")],
    out: Annotated[Path, typer.Option("--out", help="embedding directory to write")],
    provider: Annotated[str, typer.Option(help="local | openai")] = "local",
    model: Annotated[str | None, typer.Option(help="model name (openai) or model dir (local)")] = None,
    base_url: Annotated[
        str | None, typer.Option(help="OpenAI-compatible endpoint, e.g. http://h:8000/v1")
    ] = None,
    dimensions: Annotated[int | None, typer.Option(help="output size (text-embedding-3-*)")] = None,
    api_key_file: Annotated[Path | None, typer.Option(help="file holding the API key")] = None,
    batch_size: Annotated[int, typer.Option(help="texts per request")] = 64,
    max_batch_tokens: Annotated[int, typer.Option(help="token budget per request")] = 100_000,
    rpm: Annotated[float | None, typer.Option(help="requests per minute limit")] = None,
    tpm: Annotated[float | None, typer.Option(help="tokens per minute limit")] = None,
    concurrency: Annotated[int, typer.Option(help="requests in flight")] = 4,
    max_retries: Annotated[int, typer.Option(help="retries per request (429/5xx/timeouts)")] = 6,
    timeout: Annotated[float, typer.Option(help="seconds per request")] = 60.0,
    cache_dir: Annotated[Path | None, typer.Option(help="vector cache (default OUT/cache)")] = None,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="do not read or write the cache")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", help="no progress bar")] = False,
) -> None:
    """Embed every article of the news files (union of ids) into OUT; resumable via the cache."""
    from newsrec.embed.config import PrecomputeConfig, ProviderConfig
    from newsrec.embed.precompute import FAILURES_FILE, precompute

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        pcfg = ProviderConfig(
            provider=provider,  # type: ignore[arg-type]  # validated by pydantic
            model=model,
            base_url=base_url,
            dimensions=dimensions,
            api_key_file=api_key_file,
            rpm=rpm,
            tpm=tpm,
            max_retries=max_retries,
            timeout=timeout,
        )
        config = PrecomputeConfig(
            provider=pcfg,
            batch_size=batch_size,
            max_batch_tokens=max_batch_tokens,
            concurrency=concurrency,
            cache_dir=cache_dir,
            use_cache=not no_cache,
            progress=not quiet,
        )
    except ValidationError as exc:
        raise _config_error(exc) from None
    gate("embed", news=news)  # options first (cheap), then the files, then any work
    try:
        report = precompute(news, config, out)
    except NewsrecError as exc:
        _err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None
    _print_report(report.metadata())
    if not report.ok:
        ids = report.failed_ids
        _err.print(
            f"[red]{len(ids)} news ids have no vector[/red] ({len(report.failures)} failed batches); "
            f"first: {', '.join(ids[:10])}"
        )
        for failure in report.failures[:5]:
            _err.print(f"  {len(failure.ids)} ids: {failure.error}")
        _err.print(f"full list: {out / FAILURES_FILE}; re-run the same command to embed only what is missing")
        raise typer.Exit(1)


def _print_report(meta: dict[str, Any]) -> None:
    table = Table(title="embedding run", show_header=False)
    for key in (
        "provider", "model", "dimension", "count", "unique_texts", "cache_hits", "embedded_texts",
        "total_tokens", "tokens_sent", "estimated_cost_usd", "cost_note", "truncated", "empty_texts",
        "requests", "retries", "rate_limited", "failures", "duration_s", "token_counting",
    ):  # fmt: skip
        table.add_row(key, str(meta.get(key)))
    Console().print(table)


def embed_server(
    port: Annotated[int, typer.Option(help="port (0 picks a free one)")] = 8080,
    host: Annotated[str, typer.Option(help="bind address")] = "127.0.0.1",
    model_name: Annotated[
        str | None, typer.Option(help="model name to serve (default: the local model's)")
    ] = None,
    model_alias: Annotated[
        list[str] | None, typer.Option("--model-alias", help="another accepted model name (repeatable)")
    ] = None,
    require_key_file: Annotated[Path | None, typer.Option(help="clients must send this bearer key")] = None,
    max_inputs: Annotated[int, typer.Option(help="texts per request")] = 2048,
    max_input_chars: Annotated[int, typer.Option(help="characters per text")] = 32_768,
    max_request_chars: Annotated[int, typer.Option(help="characters per request")] = 1_000_000,
    max_body_bytes: Annotated[int, typer.Option(help="request body size")] = 8 * 1024 * 1024,
    request_timeout: Annotated[
        float, typer.Option(help="seconds per request (queue + work), then 504")
    ] = 60.0,
    max_queued: Annotated[int, typer.Option(help="requests queued or running; then 503")] = 32,
    chunk_texts: Annotated[int, typer.Option(help="texts per model call (the unit of fairness)")] = 8,
) -> None:
    """Serve the local model as an OpenAI-compatible /v1/embeddings endpoint."""
    from newsrec.embed.config import ProviderConfig
    from newsrec.embed.providers import build_provider
    from newsrec.embed.server import EmbeddingHTTPServer, ServerLimits

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        limits = ServerLimits(
            max_body_bytes=max_body_bytes,
            max_inputs=max_inputs,
            max_input_chars=max_input_chars,
            max_request_chars=max_request_chars,
            request_timeout_s=request_timeout,
            max_queued=max_queued,
            chunk_texts=chunk_texts,
        )
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    try:
        key = None
        if require_key_file is not None:
            if not require_key_file.is_file():
                raise typer.BadParameter(f"{require_key_file}: key file not found")
            key = require_key_file.read_text(encoding="utf-8").strip()
        provider = build_provider(ProviderConfig())
    except NewsrecError as exc:
        raise typer.BadParameter(str(exc)) from None
    server = EmbeddingHTTPServer(
        (host, port),
        provider,
        model_name=model_name,
        aliases=tuple(model_alias or ()),
        api_key=key,
        limits=limits,
    )
    _err.print(f"serving {server.model_name} on http://{host}:{server.server_address[1]}/v1/embeddings")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.scheduler.close()
        server.server_close()


def register(app: typer.Typer) -> None:
    """Add `embed` and `embed-server` as top-level commands."""
    app.command("embed")(embed)
    app.command("embed-server")(embed_server)
