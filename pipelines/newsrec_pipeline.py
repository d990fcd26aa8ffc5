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
from pipelines.params import pipeline_signature, step_inputs, step_params

PIPELINE_NAME = "newsrec-training"
DESCRIPTION = "MIND data to a registered model and a Milvus collection"
SIGNATURE = pipeline_signature(dsl.Artifact)  # the inputs: PipelineParams' fields + config_json
# Secret holding the embedding API key; its key `api-key` becomes OPENAI_API_KEY in the embed step.
SECRET_NAME = "newsrec-embedding-api"
SECRET_KEY = "api-key"
SECRET_ENV = "OPENAI_API_KEY"
IO_RETRIES = 3  # steps that call remote services or write shared stores
PVC_MOUNT = "/mnt/newsrec"  # where storage="pvc" mounts the data volume in every step
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


# What each step depends on: upstream steps (must match the wiring in `_wire`, a test checks
# it) and the pipeline parameters it reads (declared on PipelineParams). Used for the local
# cache keys (`local_cache_keys`). Not model_version for the towers: the version is a hash of
# every parameter (index type too), and the services take it from the registry manifest, so
# a new index does not re-train.
_UPSTREAM: dict[str, tuple[str, ...]] = {
    "ingest": (),
    "embed": ("ingest",),
    "graph": ("ingest",),
    "towers": ("ingest", "embed", "graph"),
    "ranker": ("ingest", "towers"),
    "evaluate": ("ingest", "ranker"),
    "index": ("ingest", "ranker"),
    "publish": ("ranker", "evaluate", "embed", "index"),
}
STEP_DEPS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    step: (upstream, step_params(step)) for step, upstream in _UPSTREAM.items()
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
    defaults = {k: v.default for k, v in SIGNATURE.parameters.items()}
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

    def newsrec_pipeline(*args: Any) -> dsl.Artifact:
        # kfp calls this with one channel per input, in the signature's order
        p = dict(zip(SIGNATURE.parameters, args, strict=True))
        tasks = _wire(p, for_cluster)
        for step, task in tasks.items():
            task.set_caching_options(enable_caching=True, cache_key=(cache_keys or {}).get(step))
            if step in RETRIED:
                _io_step(task)
        if for_cluster:
            _place(tasks, gpu, storage, p["pvc_name"])
        return tasks["publish"].outputs["manifest"]

    newsrec_pipeline.__signature__ = SIGNATURE  # type: ignore[attr-defined]
    return dsl.pipeline(name=PIPELINE_NAME, description=DESCRIPTION)(newsrec_pipeline)


def _wire(p: dict[str, Any], for_cluster: bool) -> dict[str, dsl.PipelineTask]:
    """The steps and their data flow; parameters go where PipelineParams says (step_inputs)."""
    ingest = ingest_data(**step_inputs("ingest", p)).set_display_name("validate + ingest")
    dataset = ingest.outputs["dataset"]
    embed = embed_news(dataset=dataset, **step_inputs("embed", p)).set_display_name("embed news")
    if for_cluster:
        from kfp import kubernetes

        kubernetes.use_secret_as_env(
            embed, secret_name=SECRET_NAME, secret_key_to_env={SECRET_KEY: SECRET_ENV}, optional=True
        )
    graph = build_graph(dataset=dataset, **step_inputs("graph", p)).set_display_name("build KG")
    towers = train_two_tower(
        dataset=dataset,
        embeddings=embed.outputs["embeddings"],
        graph=graph.outputs["graph"],
        **step_inputs("towers", p),
    ).set_display_name("train two-tower + GNN")
    ranker = train_ranker(dataset=dataset, towers=towers.outputs["run"], **step_inputs("ranker", p))
    ranker.set_display_name("train ranker")
    run = ranker.outputs["run"]
    ev = evaluate(dataset=dataset, run=run, **step_inputs("evaluate", p)).set_display_name("evaluate")
    index = build_index(dataset=dataset, run=run, **step_inputs("index", p))
    index.set_display_name("build Milvus collection")
    pub = publish_model(
        run=run,
        evaluation=ev.outputs["evaluation"],
        embeddings=embed.outputs["embeddings"],
        index_info=index.outputs["index_info"],
        **step_inputs("publish", p),
    ).set_display_name("publish to registry")
    tasks = {"ingest": ingest, "embed": embed, "graph": graph, "towers": towers}
    tasks.update({"ranker": ranker, "evaluate": ev, "index": index, "publish": pub})
    return tasks


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
