"""`newsrec serve` and `newsrec recommend`, plugged into the CLI via the `newsrec.cli` entry point."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from newsrec.errors import NewsrecError

_out = Console()
_err = Console(stderr=True)


def serve(
    all_services: Annotated[bool, typer.Option("--all", help="every service in this process")] = False,
    service: Annotated[
        str | None, typer.Option(help="one service: gateway | user-encoder | retrieval | ranker")
    ] = None,
    config: Annotated[Path | None, typer.Option(help="YAML config (default: $NEWSREC_CONFIG)")] = None,
    registry: Annotated[Path | None, typer.Option(help="model registry root")] = None,
    serving: Annotated[Path | None, typer.Option(help="serving artifact dir (instead of a registry)")] = None,
    model: Annotated[str | None, typer.Option(help="model name in the registry")] = None,
    model_version: Annotated[str | None, typer.Option(help="version (default: CURRENT)")] = None,
    milvus_uri: Annotated[str | None, typer.Option(help="Milvus Lite file or http://host:19530")] = None,
    redis_url: Annotated[str | None, typer.Option(help="Redis user-vector cache (default: LRU)")] = None,
    news: Annotated[list[Path] | None, typer.Option(help="MIND news.tsv with titles (repeatable)")] = None,
    port: Annotated[int | None, typer.Option(help="gRPC port (gateway port with --all)")] = None,
    metrics_port: Annotated[int | None, typer.Option(help="Prometheus metrics port")] = None,
) -> None:
    """Run the gRPC services: `--all` in one process, or `--service NAME` as on Kubernetes.

    Without either flag the service comes from NEWSREC_SERVICE or the config file."""
    from services.config import load_config
    from services.logs import setup_logging
    from services.run import serve_all, serve_one

    if all_services and service is not None:
        _err.print("[red]error:[/red] give one of --all or --service NAME, not both")
        raise typer.Exit(2)
    ports = ""
    try:
        cfg = load_config(
            config,
            overrides={
                "service": "all" if all_services else service,  # else NEWSREC_SERVICE / the YAML
                "registry": registry,
                "serving_dir": serving,
                "model_name": model,
                "model_version": model_version,
                "milvus_uri": milvus_uri,
                "cache.redis_url": redis_url,
                "news_files": news or None,
                "grpc_port": port,
                "metrics_port": metrics_port,
            },
        )
        ports = f" (gRPC port {cfg.port()}, metrics port {cfg.metrics_port})"
        if "service" not in cfg.model_fields_set:
            _err.print("[red]error:[/red] give --all or --service NAME (or set NEWSREC_SERVICE)")
            raise typer.Exit(2)
        setup_logging(cfg.log_level)
        if cfg.service == "all":
            serve_all(cfg, on_ready=_print_ports)
        else:
            serve_one(cfg)
    except NewsrecError as exc:
        _error(str(exc))
        raise typer.Exit(2) from exc
    except OSError as exc:  # a bind failure (services.server._bind) or TimeoutError (Stack.wait_ready)
        _error(f"cannot serve: {exc}" + ("" if isinstance(exc, TimeoutError) else ports))
        raise typer.Exit(1) from exc


def _error(message: str) -> None:
    """One line on stderr, however long: the message is not wrapped or read as markup."""
    _err.print(f"[red]error:[/red] {escape(message)}", soft_wrap=True, highlight=False)


def _print_ports(stack: object) -> None:
    from services.stack import Stack

    assert isinstance(stack, Stack)
    table = Table(title="newsrec services (one process)")
    table.add_column("service")
    table.add_column("address")
    for name, port in sorted(stack.ports.items(), key=lambda kv: kv[0] != "gateway"):
        table.add_row(name, f"localhost:{port}")
    if stack.metrics_port is not None:
        table.add_row("metrics", f"http://localhost:{stack.metrics_port}/metrics")
    _out.print(table)


def recommend(
    user: Annotated[str, typer.Option(help="user id")],
    history: Annotated[str, typer.Option(help="clicked news ids, comma separated, oldest first")] = "",
    k: Annotated[int, typer.Option(help="number of items")] = 10,
    target: Annotated[str, typer.Option(help="gateway address")] = "localhost:50051",
    variant: Annotated[str | None, typer.Option(help="force an A/B variant")] = None,
    timeout: Annotated[float, typer.Option(help="deadline in seconds")] = 2.0,
    tls_ca: Annotated[Path | None, typer.Option(help="CA bundle (PEM): talk TLS to the gateway")] = None,
    token_file: Annotated[
        Path | None, typer.Option(help="file with the bearer token", envvar="NEWSREC_AUTH_TOKEN_FILE")
    ] = None,
) -> None:
    """Ask the gateway for recommendations and print them as a table."""
    import grpc

    from services.generated.newsrec.v1 import recommend_pb2, recommend_pb2_grpc

    ids = [h.strip() for h in history.split(",") if h.strip()]
    request = recommend_pb2.RecommendRequest(user_id=user, history_ids=ids, k=k, forced_variant=variant or "")
    metadata: list[tuple[str, str]] = []
    try:
        if token_file is not None:
            metadata.append(("authorization", f"Bearer {token_file.read_text().strip()}"))
        creds = grpc.ssl_channel_credentials(tls_ca.read_bytes()) if tls_ca is not None else None
    except OSError as exc:
        _error(f"cannot read {exc.filename}: {exc.strerror}")
        raise typer.Exit(2) from exc
    channel_ = grpc.secure_channel(target, creds) if creds else grpc.insecure_channel(target)
    with channel_ as channel:
        try:
            resp = recommend_pb2_grpc.RecommendServiceStub(channel).Recommend(
                request, timeout=timeout, metadata=metadata
            )
        except grpc.RpcError as exc:
            _err.print(f"[red]error:[/red] {exc.code().name}: {exc.details()}")
            raise typer.Exit(1) from exc
    table = Table(title=f"Recommendations for {user}")
    for col, justify in (("rank", "right"), ("news id", "left"), ("title", "left"), ("category", "left")):
        table.add_column(col, justify=justify)  # type: ignore[arg-type]
    table.add_column("score", justify="right")
    for i, item in enumerate(resp.items, 1):
        table.add_row(str(i), item.news_id, item.title, item.category, f"{item.score:.4f}")
    _out.print(table)
    stages = {s.stage: s.seconds * 1000 for s in resp.stage_latencies}
    degraded = f"yes ({', '.join(resp.degraded_reasons)})" if resp.degraded else "no"
    _out.print(
        f"variant [bold]{resp.variant}[/bold]  model {resp.model_version}  degraded {degraded}  "
        f"cache hit {'yes' if resp.cache_hit else 'no'}  unknown history {resp.unknown_history_count}"
    )
    _out.print("latency ms: " + "  ".join(f"{name} {ms:.1f}" for name, ms in stages.items()))
    if resp.request_id:  # for RecommendService.LogFeedback (docs/serving.md, "Feedback")
        _out.print(f"request id {resp.request_id}")


def register(app: typer.Typer) -> None:
    """Add `serve` and `recommend` as top-level commands of the `newsrec` CLI."""
    app.command("serve")(serve)
    app.command("recommend")(recommend)
