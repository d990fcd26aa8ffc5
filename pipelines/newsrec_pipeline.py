"""The newsrec training pipeline: wiring only, every step is a component in `components/`.

ingest → embed ─┐
       → graph ─┼→ two-tower → ranker → evaluate ─┐
                └──────────────→ index (Milvus) ──┴→ publish (registry)

`build_pipeline(for_cluster=True)` adds what only a Kubernetes cluster has (the embedding
API key from a Secret); kfp.local cannot run platform config, so the local run builds the
same graph without it and takes the key, if any, from its own environment.
"""

from typing import Any

from kfp import dsl

from components.embed import embed_news
from components.evaluate import evaluate
from components.index import build_index
from components.ingest import ingest_data
from components.kg import build_graph
from components.publish import publish_model
from components.ranker import train_ranker
from components.two_tower import train_two_tower

PIPELINE_NAME = "newsrec-training"
# Secret holding the embedding API key; its key `api-key` becomes OPENAI_API_KEY in the embed step.
SECRET_NAME = "newsrec-embedding-api"
SECRET_KEY = "api-key"
SECRET_ENV = "OPENAI_API_KEY"
IO_RETRIES = 3  # steps that call remote services or write shared stores


def _io_step(task: dsl.PipelineTask) -> dsl.PipelineTask:
    return task.set_retry(num_retries=IO_RETRIES, backoff_duration="10s", backoff_factor=2.0)


def build_pipeline(for_cluster: bool = True) -> Any:
    """The pipeline function; `for_cluster` wires the Kubernetes secret into the embed step."""

    @dsl.pipeline(name=PIPELINE_NAME, description="MIND data to a registered model and a Milvus collection")
    def newsrec_pipeline(
        data_dir: str,
        milvus_uri: str,
        registry_root: str,
        model_name: str = "two_tower",
        model_version: str = "v1",
        data_fingerprint: str = "",
        max_bad_share: float = 0.01,
        embedding_provider: str = "local",
        embedding_model: str = "",
        embedding_base_url: str = "",
        embedding_dimensions: int = 0,
        fusion: str = "attention",
        epochs: int = 3,
        output_dim: int = 256,
        max_train_impressions: int = 0,
        seed: int = 0,
        eval_split: str = "dev",
        index_type: str = "FLAT",
        max_entities: int = 8,
        set_current: bool = True,
        config_json: str = "{}",
    ) -> dsl.Artifact:
        ingest = _io_step(
            ingest_data(data_dir=data_dir, data_fingerprint=data_fingerprint, max_bad_share=max_bad_share)
        )
        ingest.set_display_name("validate + ingest")
        embed = _io_step(
            embed_news(
                dataset=ingest.outputs["dataset"],
                provider=embedding_provider,
                model=embedding_model,
                base_url=embedding_base_url,
                dimensions=embedding_dimensions,
            )
        )
        embed.set_display_name("embed news")
        if for_cluster:
            from kfp import kubernetes

            kubernetes.use_secret_as_env(
                embed, secret_name=SECRET_NAME, secret_key_to_env={SECRET_KEY: SECRET_ENV}, optional=True
            )
        graph = build_graph(dataset=ingest.outputs["dataset"], max_entities=max_entities)
        graph.set_display_name("build KG")
        towers = train_two_tower(
            dataset=ingest.outputs["dataset"],
            embeddings=embed.outputs["embeddings"],
            graph=graph.outputs["graph"],
            epochs=epochs,
            fusion=fusion,
            output_dim=output_dim,
            max_train_impressions=max_train_impressions,
            seed=seed,
        )
        towers.set_display_name("train two-tower + GNN")
        ranker = train_ranker(dataset=ingest.outputs["dataset"], towers=towers.outputs["run"], seed=seed)
        ranker.set_display_name("train ranker")
        ev = evaluate(dataset=ingest.outputs["dataset"], run=ranker.outputs["run"], split=eval_split)
        ev.set_display_name("evaluate")
        index = _io_step(
            build_index(
                dataset=ingest.outputs["dataset"],
                run=ranker.outputs["run"],
                milvus_uri=milvus_uri,
                model_name=model_name,
                model_version=model_version,
                index_type=index_type,
            )
        )
        index.set_display_name("build Milvus collection")
        pub = _io_step(
            publish_model(
                run=ranker.outputs["run"],
                evaluation=ev.outputs["evaluation"],
                embeddings=embed.outputs["embeddings"],
                index_info=index.outputs["index_info"],
                registry_root=registry_root,
                model_name=model_name,
                model_version=model_version,
                config_json=config_json,
                set_current=set_current,
            )
        )
        pub.set_display_name("publish to registry")
        for task in (ingest, embed, graph, towers, ranker, ev, index, pub):
            task.set_caching_options(enable_caching=True)
        return pub.outputs["manifest"]

    return newsrec_pipeline


COMPONENT_NAMES = (
    "ingest-data",
    "embed-news",
    "build-graph",
    "train-two-tower",
    "train-ranker",
    "evaluate",
    "build-index",
    "publish-model",
)
