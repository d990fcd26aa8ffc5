"""Train the fusion ranker on top of a two-tower run (adds ranker weights to serving/)."""

from kfp import dsl
from kfp.dsl import Dataset, Input, Metrics, Model, Output

from components import BASE_IMAGE


@dsl.component(base_image=BASE_IMAGE, install_kfp_package=False)
def train_ranker(
    dataset: Input[Dataset],
    towers: Input[Model],
    seed: int,
    run: Output[Model],
    metrics: Output[Metrics],
) -> None:
    """Copies the towers' run (inputs are read-only) and trains the ranker into the copy."""
    import json
    import shutil
    from pathlib import Path

    import torch

    from newsrec.train.config import RankerConfig
    from newsrec.train.ranker import train_ranker as train

    torch.set_num_threads(max(1, min(2, torch.get_num_threads())))
    subdir = str(towers.metadata["run_subdir"])
    shutil.copytree(towers.path, run.path)
    result = train(RankerConfig(run=Path(run.path) / subdir, data=Path(dataset.path), seed=seed))
    metrics.log_metric("ranker_dev_auc", result.dev_auc)
    metrics.log_metric("dot_dev_auc", result.dev_auc_dot)
    metrics.log_metric("train_rows", float(result.train_rows))
    # kfp.local counts a cached output whose file is missing as a miss, and log_metric
    # writes no file: write the metrics as JSON so cached steps are reused.
    Path(metrics.path).write_text(json.dumps(dict(metrics.metadata), indent=2))
    run.metadata.update({**towers.metadata, "ranker_dev_auc": result.dev_auc})
