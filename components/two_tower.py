"""Train the two towers (ID + LLM text + KG/GNN fusion) and export the serving artifact."""

from kfp import dsl
from kfp.dsl import Dataset, Input, Metrics, Model, Output

from components import BASE_IMAGE


@dsl.component(base_image=BASE_IMAGE, install_kfp_package=False)
def train_two_tower(
    dataset: Input[Dataset],
    embeddings: Input[Dataset],
    graph: Input[Dataset],
    epochs: int,
    fusion: str,
    output_dim: int,
    max_train_impressions: int,
    seed: int,
    run: Output[Model],
    metrics: Output[Metrics],
) -> None:
    """A run directory with checkpoints, history and serving/ (newsrec.train.train_two_tower).

    The model version is not an input: the services name a model by its registry version,
    so a new version that only changes the index re-uses this step's cached output."""
    from pathlib import Path

    from components.runtime import clamp_torch_threads, log_metrics
    from newsrec.data.validate import require_embeddings
    from newsrec.models.towers import ModelConfig
    from newsrec.train.config import TrainConfig
    from newsrec.train.two_tower import train_two_tower as train

    require_embeddings(Path(embeddings.path), Path(dataset.path))  # empty / 0-dim / not covering
    clamp_torch_threads()
    cfg = TrainConfig(
        data=Path(dataset.path),
        embeddings=Path(embeddings.path),
        kg=Path(graph.path),
        out=Path(run.path) / "run",
        epochs=epochs,
        seed=seed,
        max_train_impressions=max_train_impressions or None,
        model=ModelConfig(output_dim=output_dim, fusion=fusion),  # type: ignore[arg-type]
        progress=False,
    )
    result = train(cfg)
    log_metrics(
        metrics,
        {
            "best_dev_auc": result.best_dev_auc,
            "best_epoch": result.best_epoch,
            "impressions_per_second": result.impressions_per_second,
        },
    )
    run.metadata.update(
        {
            "framework": "pytorch",
            "run_subdir": "run",  # downstream steps read RUN/<run_subdir>/serving
            "output_dim": float(output_dim),
            "fusion": fusion,
            "best_dev_auc": result.best_dev_auc,
        }
    )
