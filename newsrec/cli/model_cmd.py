"""`newsrec train`, `newsrec evaluate`, `newsrec ablation`, `newsrec kg`: model commands."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from newsrec.cli.gate import gate
from newsrec.errors import NewsrecError

if TYPE_CHECKING:
    from newsrec.train.config import RankerResult, TrainResult

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
    ctx: typer.Context,
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
    nproc: Annotated[
        int,
        typer.Option(
            min=1,
            help="training processes on this machine: execs torchrun (DistributedDataParallel, "
            "gloo on CPU, nccl on GPU); --batch-size is per process",
        ),
    ] = 1,
) -> None:
    """Train the two towers (and the ranker); writes RUN/ with checkpoints, metrics and serving/."""
    from newsrec.train.distributed import distributed_from_env

    if nproc > 1:
        _check_gpus(nproc)
        argv = torchrun_argv(ctx, nproc)
        os.execv(argv[0], argv)  # torchrun owns the processes from here on
    from newsrec.models.towers import ModelConfig
    from newsrec.train.config import RankerConfig, TrainConfig
    from newsrec.train.run import train_run

    with distributed_from_env() as world:
        splits = gate("train", data, None if no_llm else embeddings)
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
            rcfg = RankerConfig(run=out, data=data, seed=seed) if ranker else None
            result, rank = train_run(cfg, rcfg, splits=splits)  # the ranker reuses the gate's load
        except (NewsrecError, ValidationError, ValueError) as exc:
            raise _fail(exc) from None
    if world.is_main:  # the other ranks wrote nothing and have nothing to report
        _report(out, result, rank)


def _check_gpus(nproc: int) -> None:
    """With CUDA each rank needs a GPU of its own (nccl refuses two ranks on one)."""
    import torch

    if torch.cuda.is_available() and nproc > torch.cuda.device_count():
        _err.print(
            f"[red]error:[/red] --nproc {nproc}: only {torch.cuda.device_count()} GPU(s) on this machine"
        )
        raise typer.Exit(2)


def torchrun_argv(ctx: typer.Context, nproc: int) -> list[str]:
    """`python -m torch.distributed.run --standalone --nproc-per-node N -m newsrec.train`
    with the current `train` command's options (all but --nproc). `--standalone` lets
    torchrun pick a free rendezvous port on localhost."""
    args: list[str] = []
    for p in ctx.command.params:
        if p.param_type_name != "option" or p.name == "nproc" or p.name not in ctx.params:
            continue
        value = ctx.params[str(p.name)]
        if getattr(p, "is_flag", False):
            if p.secondary_opts:
                args.append(p.opts[0] if value else p.secondary_opts[0])
            elif value:
                args.append(p.opts[0])
        elif value is not None:
            args += [p.opts[0], str(value)]
    run = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}"]
    return [*run, "-m", "newsrec.train", *args]


def _report(out: Path, result: TrainResult, rank: RankerResult | None) -> None:
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

    gate("evaluate", data)
    _threads(threads)
    try:
        m = evaluate_run(
            EvalConfig(run=run, data=data, out=out, split=split, max_impressions=max_impressions)
        )
    except (NewsrecError, ValidationError, ValueError) as exc:
        raise _fail(exc) from None
    table = Table(title=f"{m['model_version']} on {m['split']} ({m['impressions']} impressions)")
    cols = ("scorer", "kind", "AUC±SE", "MRR", "nDCG@10", "never-clicked AUC (n)", "not-in-train AUC (n)")
    for col in (*cols, "empty-hist AUC (n)"):
        table.add_column(col)
    for name, s in m["scorers"].items():
        table.add_row(
            name,
            s.get("kind", ""),
            f"{_num(s['auc'])}±{_num(s.get('auc_se'))}",
            _num(s["mrr"]),
            _num(s["ndcg10"]),
            *(
                f"{_num(s[k]['auc'])} ({s[k]['impressions']})"
                for k in ("cold_unclicked", "cold_new", "empty_history")
            ),
        )
    _out().print(table)
    _print_comparison(m.get("comparison") or {})
    Console().print(f"report: {out / 'report.md'}")


def _out() -> Console:
    """stdout console; piped output gets a wide fixed width so the metric tables stay one
    line per row (rich wraps at 80 columns when it cannot see a terminal)."""
    c = Console()
    return c if c.is_terminal else Console(width=160)


def _num(v: float | None) -> str:
    return "–" if v is None else f"{v:.4f}"


def _print_comparison(comparison: dict[str, Any]) -> None:
    """The verdict line and the paired differences against the best baseline."""
    _out().print(comparison.get("verdict") or "no baseline to compare with")
    best, pairs = comparison.get("best_baseline"), comparison.get("pairs") or {}
    if not best or not pairs:
        return
    table = Table(title=f"paired over impressions: model - {best}")
    for col in ("model", "ΔAUC (SE, z)", "ΔMRR (SE, z)", "ΔnDCG@10 (SE, z)", "n"):
        table.add_column(col)
    for name, p in pairs.items():
        cells = [
            "n/a"
            if d["diff"] is None or d["z"] is None
            else f"{d['diff']:+.4f} ({_num(d['se'])}, {d['z']:+.1f})"
            for d in (p["auc"], p["mrr"], p["ndcg10"])
        ]
        table.add_row(name, *cells, str(p["auc"]["n"]))
    _out().print(table)


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
    """Train and evaluate id, id+gnn, id+llm, id+llm+gnn, fusion variants, ranker, and the baselines."""
    from newsrec.eval.ablation import VARIANTS, AblationConfig, run_ablation

    gate("ablation", data, embeddings)
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
    cols = ("auc", "auc_se", "mrr", "ndcg5", "ndcg10", "cold_unclicked_auc", "cold_new_auc", "recall50")
    table.add_column("run")
    table.add_column("kind")
    for c in cols:
        table.add_column(c)
    for r in res["runs"]:
        table.add_row(r["name"], r.get("kind", "model"), *(_num(r.get(c)) for c in cols))
    _out().print(table)
    _print_comparison(res.get("comparison") or {})


def kg(
    data: Annotated[Path, typer.Option(help="MIND-format dataset root")],
    out: Annotated[Path, typer.Option(help="graph directory to write")],
    max_entities: int = 8,
) -> None:
    """Build the news–entity graph (graph.safetensors + graph.json) for `train --kg`."""
    from newsrec.kg.graph import KGConfig, build_kg

    gate("kg", data)
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
