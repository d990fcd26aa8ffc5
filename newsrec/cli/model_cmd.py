"""`newsrec train`, `newsrec evaluate`, `newsrec ablation`, `newsrec kg`: model commands."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from newsrec.errors import NewsrecError

_err = Console(stderr=True)


def _fail(exc: Exception) -> typer.Exit:
    if isinstance(exc, ValidationError):
        msg = "; ".join(f"{'.'.join(str(x) for x in e['loc'])}: {e['msg']}" for e in exc.errors())
    else:
        msg = str(exc)
    _err.print(f"[red]error:[/red] {msg}")
    return typer.Exit(2)


def _threads(n: int | None) -> None:
    import torch

    if n:
        torch.set_num_threads(n)


def train(
    data: Annotated[Path, typer.Option(help="MIND-format dataset root (train/, dev/)")],
    out: Annotated[Path, typer.Option(help="run directory to write")],
    embeddings: Annotated[Path | None, typer.Option(help="text embedding directory (newsrec embed)")] = None,
    kg: Annotated[Path | None, typer.Option(help="prebuilt graph directory (newsrec kg)")] = None,
    epochs: int = 3,
    fusion: Annotated[str, typer.Option(help="residual | attention | gate | concat")] = "residual",
    no_id: Annotated[bool, typer.Option("--no-id", help="drop the ID embedding")] = False,
    no_llm: Annotated[bool, typer.Option("--no-llm", help="drop the LLM text embedding")] = False,
    no_gnn: Annotated[bool, typer.Option("--no-gnn", help="drop the KG/GNN embedding")] = False,
    output_dim: int = 256,
    gnn_layers: int = 2,
    max_history: int = 50,
    batch_size: int = 256,
    lr: float = 2e-3,
    temperature: float = 0.1,
    logq: Annotated[bool, typer.Option("--logq/--no-logq", help="logQ popularity correction")] = True,
    seed: int = 0,
    max_train_impressions: int | None = None,
    max_dev_impressions: Annotated[int | None, typer.Option(help="dev subsample for early stopping")] = 20000,
    ranker: Annotated[bool, typer.Option(help="also train the fusion ranker")] = True,
    threads: Annotated[int | None, typer.Option(help="torch CPU threads")] = None,
) -> None:
    """Train the two towers (and the ranker); writes RUN/ with checkpoints, metrics and serving/."""
    from newsrec.models.towers import ModelConfig
    from newsrec.train.config import RankerConfig, TrainConfig
    from newsrec.train.ranker import train_ranker
    from newsrec.train.two_tower import train_two_tower

    _threads(threads)
    try:
        cfg = TrainConfig(
            data=data,
            embeddings=embeddings,
            out=out,
            kg=kg,
            epochs=epochs,
            batch_size=batch_size,
            lr=lr,
            temperature=temperature,
            logq=logq,
            seed=seed,
            max_train_impressions=max_train_impressions,
            max_dev_impressions=max_dev_impressions,
            model=ModelConfig(
                output_dim=output_dim,
                fusion=fusion,  # type: ignore[arg-type]  # validated by pydantic
                use_id=not no_id,
                use_llm=not no_llm,
                use_gnn=not no_gnn,
                gnn_layers=gnn_layers,
                max_history=max_history,
            ),
        )
        result = train_two_tower(cfg)
        rank = train_ranker(RankerConfig(run=out, data=data, seed=seed)) if ranker else None
    except (NewsrecError, ValidationError, ValueError) as exc:
        raise _fail(exc) from None
    table = Table(title=f"run {out}")
    table.add_column("epoch")
    table.add_column("loss")
    table.add_column("dev AUC")
    table.add_column("impressions/s")
    for h in result.history:
        table.add_row(
            str(int(h["epoch"])),
            f"{h['loss']:.4f}",
            f"{h['dev_auc']:.4f}",
            f"{h['impressions_per_second']:.0f}",
        )
    Console().print(table)
    msg = f"best epoch {result.best_epoch}, dev AUC {result.best_dev_auc:.4f}"
    if rank is not None:
        msg += f"; ranker dev AUC {rank.dev_auc:.4f} (dot {rank.dev_auc_dot:.4f})"
    Console().print(msg + f"; serving artifact: {result.serving_dir}")


def evaluate(
    run: Annotated[Path, typer.Option(help="run directory (with serving/)")],
    data: Annotated[Path, typer.Option(help="MIND-format dataset root")],
    out: Annotated[Path, typer.Option(help="report directory to write")],
    split: str = "dev",
    max_impressions: int | None = None,
    threads: Annotated[int | None, typer.Option(help="torch CPU threads")] = None,
) -> None:
    """Evaluate a run: metrics.json + report.md (+ PNG plots) in OUT."""
    from newsrec.eval.evaluate import EvalConfig, evaluate_run

    _threads(threads)
    try:
        m = evaluate_run(
            EvalConfig(run=run, data=data, out=out, split=split, max_impressions=max_impressions)
        )
    except (NewsrecError, ValidationError, ValueError) as exc:
        raise _fail(exc) from None
    table = Table(title=f"{m['model_version']} on {m['split']} ({m['impressions']} impressions)")
    for col in ("scorer", "AUC", "MRR", "nDCG@5", "nDCG@10", "cold AUC", "empty-hist AUC"):
        table.add_column(col)
    for name, s in m["scorers"].items():
        vals = [s["auc"], s["mrr"], s["ndcg5"], s["ndcg10"], s["cold"]["auc"], s["empty_history"]["auc"]]
        table.add_row(name, *(f"{v:.4f}" for v in vals))
    Console().print(table)
    Console().print(f"report: {out / 'report.md'}")


def ablation(
    data: Annotated[Path, typer.Option(help="MIND-format dataset root")],
    out: Annotated[Path, typer.Option(help="ablation directory to write")],
    embeddings: Annotated[Path | None, typer.Option(help="text embedding directory")] = None,
    epochs: int = 3,
    output_dim: int = 64,
    batch_size: int = 256,
    seed: int = 0,
    max_train_impressions: int | None = None,
    eval_impressions: int | None = 20000,
    max_dev_impressions: Annotated[int | None, typer.Option(help="dev subsample for early stopping")] = 10000,
    variant: Annotated[
        list[str] | None,
        typer.Option(help="run only these variants (repeat); rows of earlier runs in OUT are kept"),
    ] = None,
    threads: Annotated[int | None, typer.Option(help="torch CPU threads")] = None,
) -> None:
    """Train and evaluate id, id+gnn, id+llm, id+llm+gnn, fusion variants, ranker, popularity."""
    from newsrec.eval.ablation import VARIANTS, AblationConfig, run_ablation

    _threads(threads)
    try:
        res = run_ablation(
            AblationConfig(
                data=data,
                embeddings=embeddings,
                out=out,
                epochs=epochs,
                output_dim=output_dim,
                batch_size=batch_size,
                seed=seed,
                max_train_impressions=max_train_impressions,
                eval_impressions=eval_impressions,
                max_dev_impressions=max_dev_impressions,
                variants=tuple(variant) if variant else tuple(VARIANTS),
            )
        )
    except (NewsrecError, ValidationError, ValueError) as exc:
        raise _fail(exc) from None
    _print_ablation(res)
    Console().print(f"written: {out / 'ablation.json'}, {out / 'ablation.png'}")


def _print_ablation(res: dict[str, Any]) -> None:
    table = Table(title="ablation (dev)")
    cols = ("auc", "mrr", "ndcg5", "ndcg10", "cold_auc", "recall50")
    table.add_column("run")
    for c in cols:
        table.add_column(c)
    for r in res["runs"]:
        table.add_row(r["name"], *("–" if r.get(c) is None else f"{r[c]:.4f}" for c in cols))
    Console().print(table)


def kg(
    data: Annotated[Path, typer.Option(help="MIND-format dataset root")],
    out: Annotated[Path, typer.Option(help="graph directory to write")],
    max_entities: int = 8,
) -> None:
    """Build the news–entity graph (graph.safetensors + graph.json) for `train --kg`."""
    from newsrec.kg.graph import KGConfig, build_kg

    try:
        summary = build_kg(data, out, KGConfig(max_entities_per_article=max_entities))
    except (NewsrecError, ValidationError) as exc:
        raise _fail(exc) from None
    Console().print_json(json.dumps(summary))


def register(app: typer.Typer) -> None:
    """Add the model commands at the top level of the `newsrec` CLI."""
    app.command()(train)
    app.command()(evaluate)
    app.command()(ablation)
    app.command(name="kg")(kg)
