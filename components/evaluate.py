"""Evaluate the trained run offline: metrics.json, report.md and PNG plots."""

from kfp import dsl
from kfp.dsl import HTML, Dataset, Input, Markdown, Metrics, Model, Output

from components import BASE_IMAGE


@dsl.component(base_image=BASE_IMAGE, install_kfp_package=False)
def evaluate(
    dataset: Input[Dataset],
    run: Input[Model],
    split: str,
    evaluation: Output[Dataset],
    report: Output[Markdown],
    metrics: Output[Metrics],
    html_report: Output[HTML],
) -> None:
    """newsrec.eval.evaluate_run; headline metrics are logged per scorer (models and
    baselines) for the KFP UI's metrics tab, and `html_report` is the report with its plots
    embedded as base64 data URIs (the UI cannot resolve a Markdown report's relative PNGs)."""
    import base64
    import html
    import re
    import shutil
    from pathlib import Path

    from components.runtime import clamp_torch_threads, log_metrics
    from newsrec.eval.evaluate import EvalConfig, evaluate_run

    clamp_torch_threads()
    run_dir = Path(run.path) / str(run.metadata["run_subdir"])
    out = Path(evaluation.path)
    m = evaluate_run(EvalConfig(run=run_dir, data=Path(dataset.path), out=out, split=split, progress=False))
    keys = ("auc", "mrr", "ndcg5", "ndcg10")
    log_metrics(metrics, {f"{scorer}_{k}": s[k] for scorer, s in m["scorers"].items() for k in keys})
    shutil.copyfile(out / "report.md", report.path)
    # Markdown in <pre> (tables stay aligned), each ![alt](file.png) an inline <img>.
    parts = []
    for src in [out / "report.md", *sorted(run_dir.glob("**/ablation.md"))]:
        for line in src.read_text().splitlines():
            img = re.fullmatch(r"\s*!\[([^\]]*)\]\(([^)]+\.png)\)\s*", line)
            png = src.parent / img.group(2) if img else None
            if img and png and png.is_file():
                data = base64.b64encode(png.read_bytes()).decode()
                alt = html.escape(img.group(1))
                parts.append(f'</pre><img alt="{alt}" src="data:image/png;base64,{data}"><pre>')
            else:
                parts.append(html.escape(line))
    body = "\n".join(parts)
    Path(html_report.path).write_text(
        f"<!doctype html><html><head><meta charset='utf-8'><title>newsrec evaluation</title></head>"
        f"<body style='font-family:sans-serif'><pre>{body}</pre></body></html>\n"
    )
    evaluation.metadata.update({"model_version": m["model_version"], "split": split})
