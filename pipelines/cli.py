"""`newsrec pipeline compile|run|submit` (and `newsrec pipeline registry`, an alias of `newsrec registry`)."""

from __future__ import annotations

import hashlib
import json
import logging
import time
import warnings
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from newsrec.cli.registry_cmd import app as registry_app
from newsrec.errors import NewsrecError
from pipelines.params import PipelineParams, pipeline_options

app = typer.Typer(help="Kubeflow pipeline: compile, run locally, submit.", no_args_is_help=True)
# `newsrec pipeline registry ...` stays as an alias of the library's `newsrec registry ...`.
app.add_typer(registry_app, name="registry", help="Alias of `newsrec registry`.")
_out = Console()
_err = Console(stderr=True, soft_wrap=True)  # error messages name paths: never wrap them


def _params(**kw: Any) -> dict[str, Any]:
    """The pipeline's arguments for `kw` (PipelineParams fields): every parameter, an empty
    model_version resolved to `v<hash of the config>` (same inputs, same version and cache
    hits; changed inputs a new version, never a rebuild of a served collection), and
    config_json, the config the registry manifest records."""
    return PipelineParams(**kw).arguments()


def data_fingerprint(root: Path | str) -> str:
    """Content hash of the dataset, part of the ingest step's cache key (so the same bytes
    hit the cache whatever their path or mtime, and changed bytes re-run). Local: sha256 of
    every file's name and bytes. Object store: the store's own per-object checksums."""
    from newsrec.registry import is_remote, remote_fingerprint

    if is_remote(root):
        return remote_fingerprint(str(root))
    root = Path(root)
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if p.is_file() and not p.name.startswith("."):
            h.update(f"{p.relative_to(root)}\0".encode())
            with p.open("rb") as f:
                while chunk := f.read(1 << 20):
                    h.update(chunk)
    return h.hexdigest()[:16]


Storage = Annotated[
    str,
    typer.Option(
        help="where the steps read data and write the registry on a cluster: pvc (a PersistentVolumeClaim "
        "mounted at /mnt/newsrec in every step) | object (s3:// gs:// minio:// URIs)"
    ),
]
Gpu = Annotated[
    str, typer.Option(help="accelerator type for one GPU on the training step, e.g. nvidia.com/gpu")
]


@app.command("compile")
def compile_cmd(
    out: Annotated[Path, typer.Option(help="IR YAML to write")] = Path("pipeline.yaml"),
    storage: Storage = "pvc",
    gpu: Gpu = "",
) -> None:
    """Compile the pipeline for a cluster (secret, resources, storage) to IR YAML.

    Every step runs the image in the NEWSREC_IMAGE environment variable at compile time
    (default ghcr.io/newsrec/newsrec:0.1.0): build and push the project's Dockerfile, then
    NEWSREC_IMAGE=registry.example.com/newsrec:TAG newsrec pipeline compile.
    """
    from kfp import compiler

    from components import BASE_IMAGE

    out.parent.mkdir(parents=True, exist_ok=True)
    compiler.Compiler().compile(_cluster_pipeline(storage, gpu), str(out))
    _out.print(f"wrote {out} (image {BASE_IMAGE}, storage {storage})")


def _cluster_pipeline(storage: str, gpu: str) -> Any:
    from pipelines.newsrec_pipeline import build_pipeline

    try:
        return build_pipeline(for_cluster=True, storage=storage, gpu=gpu)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--storage") from None


_RUN_LOCATIONS = {
    "milvus_uri": ("", "default: OUT/milvus.db (Milvus Lite); http://host:19530 for a server"),
    "registry_root": ("", "default: OUT/registry; or s3://bucket/prefix"),
}


@app.command()
@pipeline_options(cluster=False, overrides=_RUN_LOCATIONS)
def run(
    out: Annotated[Path, typer.Option(help="output dir: pipeline root, cache, milvus.db, registry/")],
    cache: Annotated[bool, typer.Option(help="reuse finished steps with the same inputs")] = True,
    *,
    params: PipelineParams,
) -> None:
    """Run the same pipeline on this machine, offline, through kfp.local (subprocess runner)."""
    from newsrec.registry import is_remote

    data = params.data_dir
    if not is_remote(data) and not Path(data).is_dir():
        raise typer.BadParameter(f"{data}: not a directory", param_hint="--data")
    if not is_remote(data):  # a bucket is validated by the ingest step, which downloads it
        _gate(Path(data))
    out = out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    try:
        fingerprint = params.data_fingerprint or data_fingerprint(data)
    except (NewsrecError, OSError) as exc:
        raise typer.BadParameter(f"{data}: {exc}", param_hint="--data") from None
    where = {
        "data_dir": data if is_remote(data) else str(Path(data).resolve()),
        "data_fingerprint": fingerprint,
        "milvus_uri": params.milvus_uri or str(out / "milvus.db"),
        "registry_root": params.registry_root or str(out / "registry"),
    }
    try:
        summary = run_local(_params(**{**params.model_dump(), **where}), out, cache=cache)
    except NewsrecError as exc:
        _err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None
    print_summary(summary)


def _gate(data: Path) -> None:
    """The validation gate of every entry point, before any step runs (newsrec.cli.gate)."""
    from newsrec.cli.gate import gate

    gate("pipeline run", data)


def run_local(params: dict[str, Any], out: Path, cache: bool = True) -> dict[str, Any]:
    """Run the pipeline with kfp.local; returns the publish step's summary plus timings."""
    from kfp import local

    from pipelines.newsrec_pipeline import build_pipeline, local_cache_keys

    local.init(
        runner=local.SubprocessRunner(use_venv=False),
        pipeline_root=str(out / "pipeline_root"),
        enable_caching=cache,
        cache_root=str(out / "kfp_cache"),
        raise_on_error=True,
    )
    logging.getLogger().setLevel(logging.INFO)  # kfp.local reports each task (and cache hits) at INFO
    started = time.perf_counter()
    try:
        with warnings.catch_warnings():
            # Local-runner notes that do not apply: display names are UI-only, and the
            # project image *is* this environment (use_venv=False runs in it).
            warnings.filterwarnings("ignore", message=".*have no effect in the current local runner.*")
            warnings.filterwarnings("ignore", message=".*non-Python base image.*")
            task = build_pipeline(for_cluster=False, cache_keys=local_cache_keys(params))(**params)
    except RuntimeError as exc:  # kfp.local raises RuntimeError naming the failed task
        raise NewsrecError(f"pipeline failed: {exc}") from exc
    summary: dict[str, Any] = json.loads(Path(task.output.path).read_text())
    summary["duration_s"] = round(time.perf_counter() - started, 1)
    summary["pipeline_root"] = str(out / "pipeline_root")
    return summary


def print_summary(summary: dict[str, Any]) -> None:
    table = Table(title=f"published {summary['name']}/{summary['version']} in {summary['duration_s']} s")
    table.add_column("item")
    table.add_column("value")
    table.add_row("manifest", summary["manifest"])
    idx = summary.get("index") or {}
    coll = f"{idx.get('collection')} (alias {idx.get('alias')}, {idx.get('count')} rows)"
    table.add_row("milvus", f"{idx.get('uri')}: {coll}")
    table.add_row("model version", str(summary.get("serving_model_version")))
    table.add_row("pipeline root", summary["pipeline_root"])
    for k, v in sorted(summary["metrics"].items()):
        table.add_row(k, f"{v:.4f}")
    _out.print(table)


@app.command()
@pipeline_options(cluster=True)
def submit(
    host: Annotated[str, typer.Option(help="Kubeflow Pipelines API endpoint, e.g. http://localhost:8080")],
    experiment: Annotated[str, typer.Option(help="experiment name")] = "newsrec",
    run_name: Annotated[str, typer.Option(help="run name (default: pipeline name + time)")] = "",
    storage: Storage = "pvc",
    gpu: Gpu = "",
    token: Annotated[str, typer.Option(envvar="KFP_TOKEN", help="bearer token (env KFP_TOKEN)")] = "",
    *,
    params: PipelineParams,
) -> None:
    """Compile and submit the pipeline to a Kubeflow Pipelines cluster with kfp.Client.

    Locations (--data, --registry-root, --milvus-uri) are as the cluster's pods see them."""
    import kfp

    if not host.startswith(("http://", "https://")):
        raise typer.BadParameter(f"{host!r}: must start with http:// or https://", param_hint="--host")
    where = {"--data": params.data_dir, "--registry-root": params.registry_root}
    _check_cluster_locations(storage, where, params.milvus_uri)
    fingerprint = params.data_fingerprint or _submit_fingerprint(params.data_dir, storage)
    arguments = _params(**{**params.model_dump(), "data_fingerprint": fingerprint})
    client = kfp.Client(host=host, existing_token=token or None)
    result = client.create_run_from_pipeline_func(
        _cluster_pipeline(storage, gpu),
        arguments=arguments,
        run_name=run_name or None,
        experiment_name=experiment,
        enable_caching=True,
    )
    _out.print(f"submitted run {result.run_id} to {host} (experiment {experiment})")


def _check_cluster_locations(storage: str, where: dict[str, str], milvus_uri: str) -> None:
    """Every location must exist inside the pods: under the PVC mount (pvc) or in a bucket
    (object); Milvus must be a server (a Lite file would live and die in one pod)."""
    from newsrec.registry import is_remote
    from pipelines.newsrec_pipeline import PVC_MOUNT

    for flag, value in where.items():
        if storage == "object" and not is_remote(value):
            raise typer.BadParameter(
                f"{value!r}: --storage object needs s3://, gs:// or minio://", param_hint=flag
            )
        if storage == "pvc" and not (value == PVC_MOUNT or value.startswith(PVC_MOUNT + "/")):
            raise typer.BadParameter(
                f"{value!r}: --storage pvc reads and writes under the mount {PVC_MOUNT}/ "
                "(or use --storage object)",
                param_hint=flag,
            )
    if not milvus_uri.startswith(("http://", "https://")):
        raise typer.BadParameter(
            f"{milvus_uri!r}: a cluster run needs a Milvus server URI", param_hint="--milvus-uri"
        )


def _submit_fingerprint(data: str, storage: str) -> str:
    """The data's content hash for the cache key: read from the bucket (object); a PVC is not
    visible from here, so the run's own ingest hashes it ('' keeps the path as the key)."""
    from newsrec.registry import is_remote

    if storage == "object" and is_remote(data):
        try:
            return data_fingerprint(data)
        except Exception as exc:  # unreachable bucket, no credentials: the run still works
            _err.print(f"[yellow]warning:[/yellow] cannot fingerprint {data} ({exc}); caching by path")
    return ""
