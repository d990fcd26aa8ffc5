"""The newsrec training pipeline: wiring only, every step is a component in `components/`.

ingest → embed ─┐
       → graph ─┼→ two-tower → ranker → evaluate ─┐
                └──────────────→ index (Milvus) ──┴→ publish (registry)

`build_pipeline(for_cluster=True)` adds what only a Kubernetes cluster has (the embedding
API key from a Secret); kfp.local cannot run platform config, so the local run builds the
same graph without it and takes the key, if any, from its own environment.
"""

import hashlib
import inspect
import json
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


# What each step depends on: upstream steps and pipeline parameters. Used for the local
# cache keys (`local_cache_keys`); must match the wiring below (a test checks it).
STEP_DEPS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "ingest": ((), ("data_dir", "data_fingerprint", "max_bad_share")),
    "embed": (
        ("ingest",),
        ("embedding_provider", "embedding_model", "embedding_base_url", "embedding_dimensions"),
    ),
    "graph": (("ingest",), ("max_entities",)),
    "towers": (
        ("ingest", "embed", "graph"),
        # Not model_version: the version is a hash of every parameter (index type too), and
        # the services take it from the registry manifest, so a new index does not re-train.
        ("epochs", "fusion", "output_dim", "max_train_impressions", "seed"),
    ),
    "ranker": (("ingest", "towers"), ("seed",)),
    "evaluate": (("ingest", "ranker"), ("eval_split",)),
    "index": (("ingest", "ranker"), ("milvus_uri", "model_name", "model_version", "index_type")),
    "publish": (
        ("ranker", "evaluate", "embed", "index"),
        ("registry_root", "model_name", "model_version", "config_json", "set_current"),
    ),
}
STEP_COMPONENTS = {
    "ingest": ingest_data,
    "embed": embed_news,
    "graph": build_graph,
    "towers": train_two_tower,
    "ranker": train_ranker,
    "evaluate": evaluate,
    "index": build_index,
    "publish": publish_model,
}


def local_cache_keys(params: dict[str, Any]) -> dict[str, str]:
    """Cache key per step for kfp.local: hash of the step's component source, its parameters
    and its upstream steps' keys, so a changed parameter re-runs exactly the steps that
    depend on it.

    Why not kfp.local's own key: it hashes input artifacts including their metadata, and
    an artifact restored from the cache differs from a fresh one in ways that do not matter
    (measured: every step after a cached one missed), so nothing below the first level hit.
    """
    signature = inspect.signature(build_pipeline(False).pipeline_func)
    defaults = {k: v.default for k, v in signature.parameters.items()}
    values = {**defaults, **params}
    keys: dict[str, str] = {}
    for step, (upstream, names) in STEP_DEPS.items():  # insertion order is topological
        h = hashlib.sha256(step.encode())
        h.update(STEP_COMPONENTS[step].component_spec.implementation.container.command[-1].encode())
        h.update(json.dumps({n: values[n] for n in names}, sort_keys=True, default=str).encode())
        for up in upstream:
            h.update(keys[up].encode())
        keys[step] = h.hexdigest()
    return keys


def build_pipeline(for_cluster: bool = True, cache_keys: dict[str, str] | None = None) -> Any:
    """The pipeline function; `for_cluster` wires the Kubernetes secret into the embed step,
    `cache_keys` (local runs) sets each step's cache key (see `local_cache_keys`)."""

    @dsl.pipeline(name=PIPELINE_NAME, description="MIND data to a registered model and a Milvus collection")
    def newsrec_pipeline(
        data_dir: str,
        milvus_uri: str,
        registry_root: str,
        model_name: str = "newsrec",
        model_version: str = "v1",
        data_fingerprint: str = "",
        max_bad_share: float = 0.01,
        embedding_provider: str = "local",
        embedding_model: str = "",
        embedding_base_url: str = "",
        embedding_dimensions: int = 0,
        fusion: str = "residual",
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
        tasks = {"ingest": ingest, "embed": embed, "graph": graph, "towers": towers}
        tasks.update({"ranker": ranker, "evaluate": ev, "index": index, "publish": pub})
        for step, task in tasks.items():
            task.set_caching_options(enable_caching=True, cache_key=(cache_keys or {}).get(step))
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
