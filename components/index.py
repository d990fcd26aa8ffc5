"""Build the Milvus collection of news-tower vectors for this model version and flip its alias."""

from kfp import dsl
from kfp.dsl import Artifact, Dataset, Input, Model, Output

from components import BASE_IMAGE


@dsl.component(base_image=BASE_IMAGE, install_kfp_package=False)
def build_index(
    dataset: Input[Dataset],
    run: Input[Model],
    milvus_uri: str,
    model_name: str,
    model_version: str,
    index_type: str,
    index_info: Output[Artifact],
) -> None:
    """Collection news_<model>_<version>, alias news_<model>; writes index_info JSON."""
    import json
    from pathlib import Path

    from newsrec.data import load_dataset
    from newsrec.index.milvus import IndexSpec, MilvusIndex, alias_name
    from newsrec.index.records import news_records
    from newsrec.models import load_serving

    model = load_serving(Path(run.path) / str(run.metadata["run_subdir"]) / "serving")
    splits = load_dataset(dataset.path)
    records = news_records(model.news_ids(), model.news_vectors(), splits, model_version)
    index = MilvusIndex.from_uri(milvus_uri, spec=IndexSpec(index_type))
    try:
        alias = alias_name(model_name)
        coll = index.build_version(alias, model_version, records)
        count = index.count(alias)
    finally:
        index.close(stop_lite=True)
    info = {"uri": milvus_uri, "collection": coll, "alias": alias, "index_type": index_type}
    Path(index_info.path).write_text(json.dumps({**info, "count": count}, indent=2))
    index_info.metadata.update({**info, "count": float(count)})  # float: see embed.py
