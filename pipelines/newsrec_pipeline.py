"""The newsrec training pipeline: wiring only, every step is a component in `components/`.

ingest → embed ─┐
       → graph ─┼→ two-tower → ranker → evaluate ─┐
                └──────────────→ index (Milvus) ──┴→ publish (registry)

`build_pipeline(for_cluster=True)` adds what only a Kubernetes cluster has (the embedding
API key from a Secret, and under `storage="pvc"` the data volume mounted into every step);
kfp.local cannot run platform config, so the local run builds the same graph without it
and takes the key, if any, from its own environment.

Where data and artefacts live on a cluster (pods are ephemeral, nothing on the submitting
machine exists there): `storage="pvc"` mounts the PersistentVolumeClaim named by the
`pvc_name` parameter at `PVC_MOUNT` in every step, and `data_dir`/`registry_root` are paths
under it; `storage="object"` mounts nothing and they are s3:// / gs:// / minio:// URIs
(read and written through fsspec). Milvus is always a server URI on a cluster.
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
PVC_MOUNT = "/mnt/newsrec"  # where storage="pvc" mounts the data volume in every step
DEFAULT_PVC = "newsrec-data"  # the claim helm/newsrec creates (pipelineStorage.enabled)
STORAGE_MODES = ("pvc", "object")
# Requests/limits per step (CPU cores, memory). Torch steps (embed, towers, ranker) need the
# most; limits above requests leave room for a peak without reserving it on the node.
RESOURCES: dict[str, tuple[str, str, str, str]] = {
    # step: (cpu request, cpu limit, memory request, memory limit)
    "ingest": ("500m", "1", "1Gi", "2Gi"),
    "embed": ("2", "4", "4Gi", "8Gi"),
    "graph": ("1", "2", "2Gi", "4Gi"),
    "towers": ("4", "8", "8Gi", "16Gi"),
    "ranker": ("2", "4", "4Gi", "8Gi"),
    "evaluate": ("1", "2", "4Gi", "8Gi"),
    "index": ("500m", "1", "2Gi", "4Gi"),
    "publish": ("250m", "1", "512Mi", "1Gi"),
}
# Steps that may run again after a pod failure without harm: ingest re-copies, embed resumes
# from its cache, index is idempotent per (alias, version, input), publish re-uploads the
# same bytes. Training steps are not retried: a deterministic OOM would only burn hours.
RETRIED = ("ingest", "embed", "index", "publish")


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


def _place(tasks: dict[str, dsl.PipelineTask], gpu: str, storage: str, pvc_name: Any) -> None:
    """Cluster placement: resources per step, the GPU on training, the data volume."""
    from kfp import kubernetes

    for step, task in tasks.items():
        cpu_req, cpu_lim, mem_req, mem_lim = RESOURCES[step]
        task.set_cpu_request(cpu_req).set_cpu_limit(cpu_lim)
        task.set_memory_request(mem_req).set_memory_limit(mem_lim)
        if storage == "pvc":
            kubernetes.mount_pvc(task, pvc_name=pvc_name, mount_path=PVC_MOUNT)
    if gpu:
        tasks["towers"].set_accelerator_type(gpu).set_accelerator_limit(1)


def build_pipeline(
    for_cluster: bool = True,
    cache_keys: dict[str, str] | None = None,
    storage: str = "pvc",
    gpu: str = "",
) -> Any:
    """The pipeline function; `for_cluster` wires the Kubernetes secret, resources and (under
    `storage="pvc"`) the data volume into the steps; `gpu` (an accelerator type such as
    `nvidia.com/gpu`) gives the training step one GPU; `cache_keys` (local runs) sets each
    step's cache key (see `local_cache_keys`)."""
    if storage not in STORAGE_MODES:
        raise ValueError(f"storage {storage!r}: choose one of {', '.join(STORAGE_MODES)}")

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
        pvc_name: str = DEFAULT_PVC,
    ) -> dsl.Artifact:
        ingest = ingest_data(
            data_dir=data_dir, data_fingerprint=data_fingerprint, max_bad_share=max_bad_share
        )
        ingest.set_display_name("validate + ingest")
        embed = embed_news(
            dataset=ingest.outputs["dataset"],
            provider=embedding_provider,
            model=embedding_model,
            base_url=embedding_base_url,
            dimensions=embedding_dimensions,
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
        index = build_index(
            dataset=ingest.outputs["dataset"],
            run=ranker.outputs["run"],
            milvus_uri=milvus_uri,
            model_name=model_name,
            model_version=model_version,
            index_type=index_type,
        )
        index.set_display_name("build Milvus collection")
        pub = publish_model(
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
        pub.set_display_name("publish to registry")
        tasks = {"ingest": ingest, "embed": embed, "graph": graph, "towers": towers}
        tasks.update({"ranker": ranker, "evaluate": ev, "index": index, "publish": pub})
        for step, task in tasks.items():
            task.set_caching_options(enable_caching=True, cache_key=(cache_keys or {}).get(step))
            if step in RETRIED:
                _io_step(task)
        if for_cluster:
            _place(tasks, gpu, storage, pvc_name)
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
