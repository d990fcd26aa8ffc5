"""Evaluate the trained run offline: metrics.json, report.md and PNG plots."""

from kfp import dsl
from kfp.dsl import Dataset, Input, Markdown, Metrics, Model, Output

from components import BASE_IMAGE


@dsl.component(base_image=BASE_IMAGE, install_kfp_package=False)
def evaluate(
    dataset: Input[Dataset],
    run: Input[Model],
    split: str,
    evaluation: Output[Dataset],
    report: Output[Markdown],
    metrics: Output[Metrics],
) -> None:
    """newsrec.eval.evaluate_run; headline metrics are logged per scorer."""
    import json
    import shutil
    from pathlib import Path

    import torch

    from newsrec.eval.evaluate import EvalConfig, evaluate_run

    torch.set_num_threads(max(1, min(2, torch.get_num_threads())))
    run_dir = Path(run.path) / str(run.metadata["run_subdir"])
    out = Path(evaluation.path)
    m = evaluate_run(EvalConfig(run=run_dir, data=Path(dataset.path), out=out, split=split, progress=False))
    for scorer, s in m["scorers"].items():
        for key in ("auc", "mrr", "ndcg5", "ndcg10"):
            metrics.log_metric(f"{scorer}_{key}", float(s[key]))
    # kfp.local counts a cached output whose file is missing as a miss, and log_metric
    # writes no file: write the metrics as JSON so cached steps are reused.
    Path(metrics.path).write_text(json.dumps(dict(metrics.metadata), indent=2))
    shutil.copyfile(out / "report.md", report.path)
    evaluation.metadata.update({"model_version": m["model_version"], "split": split})
