"""Publish the serving artifact, evaluation and index location to the model registry."""

from kfp import dsl
from kfp.dsl import Artifact, Dataset, Input, Model, Output

from components import BASE_IMAGE


@dsl.component(base_image=BASE_IMAGE, install_kfp_package=False)
def publish_model(
    run: Input[Model],
    evaluation: Input[Dataset],
    embeddings: Input[Dataset],
    index_info: Input[Artifact],
    registry_root: str,
    model_name: str,
    model_version: str,
    config_json: str,
    set_current: bool,
    manifest: Output[Artifact],
) -> None:
    """REGISTRY/models/<name>/<version>/ with manifest.json; optionally flips CURRENT.
    `registry_root` is a path the pod sees (a mounted PVC) or an object-store URI."""
    import json
    from pathlib import Path

    from newsrec.models.artifact import verify_serving
    from newsrec.registry import is_remote, publish

    run_dir = Path(run.path) / str(run.metadata["run_subdir"])
    verify_serving(run_dir / "serving")  # never publish a partial or edited artifact
    metrics = json.loads((Path(evaluation.path) / "metrics.json").read_text())
    flat = {
        f"{scorer}_{key}": float(s[key])
        for scorer, s in metrics["scorers"].items()
        for key in ("auc", "mrr", "ndcg5", "ndcg10")
    }
    emb = embeddings.metadata
    m = publish(
        registry_root,
        model_name,
        model_version,
        artifacts={"serving": run_dir / "serving", "evaluation": Path(evaluation.path)},
        config=json.loads(config_json),
        metrics=flat,
        embedding={
            "provider": emb["provider"],
            "model": emb["model"],
            "dimensions": int(emb.get("dimension") or 0) or None,  # metadata numbers are floats
        },
        index_info=json.loads(Path(index_info.path).read_text()),
        set_current=set_current,
    )
    summary = {
        "registry": str(registry_root),
        "name": m.name,
        "version": m.version,
        "manifest": (
            f"{str(registry_root).rstrip('/')}/models/{m.name}/{m.version}/manifest.json"
            if is_remote(registry_root)
            else str(m.version_dir() / "manifest.json")
        ),
        "metrics": m.metrics,
        "index": m.index.model_dump() if m.index else None,
        "serving_model_version": evaluation.metadata.get("model_version"),
    }
    Path(manifest.path).write_text(json.dumps(summary, indent=2))
    manifest.metadata.update({"name": m.name, "version": m.version})
