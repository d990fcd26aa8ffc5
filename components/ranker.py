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
    import shutil
    from pathlib import Path

    from components.runtime import clamp_torch_threads, log_metrics
    from newsrec.train.config import RankerConfig
    from newsrec.train.ranker import train_ranker as train

    clamp_torch_threads()
    subdir = str(towers.metadata["run_subdir"])
    shutil.copytree(towers.path, run.path)
    result = train(RankerConfig(run=Path(run.path) / subdir, data=Path(dataset.path), seed=seed))
    values = {"ranker_dev_auc": result.dev_auc, "dot_dev_auc": result.dev_auc_dot}
    log_metrics(metrics, {**values, "train_rows": result.train_rows})
    run.metadata.update({**towers.metadata, "ranker_dev_auc": result.dev_auc})
