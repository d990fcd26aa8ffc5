"""Validate a MIND-format dataset and snapshot it as the pipeline's dataset artifact."""

from kfp import dsl
from kfp.dsl import Dataset, Markdown, Output

from components import BASE_IMAGE


@dsl.component(base_image=BASE_IMAGE, install_kfp_package=False)
def ingest_data(
    data_dir: str,
    data_fingerprint: str,
    max_bad_share: float,
    dataset: Output[Dataset],
    report: Output[Markdown],
) -> None:
    """Fail on unusable data (message names file/line); otherwise copy it into `dataset`.

    `data_dir` is a path the pod sees (a mounted PVC) or an object-store URI (s3://,
    gs://, minio://), downloaded first. `data_fingerprint` (the data's content hash,
    computed at submit time) is not read: it is part of the cache key, so changed files
    re-run the pipeline even when `data_dir` is the same location.
    """
    import json
    import shutil
    import tempfile
    from pathlib import Path

    from newsrec.data.validate import UnusableData, validate_dataset
    from newsrec.registry import download_tree, is_remote

    staged = tempfile.mkdtemp(prefix="newsrec-data-") if is_remote(data_dir) else None
    local = download_tree(data_dir, Path(staged)) if staged else Path(data_dir)
    # The gate of every entry point (newsrec.data.validate.require_usable), keeping the report.
    result = validate_dataset(local, max_bad_share=max_bad_share)
    text = json.dumps(result.to_dict(), default=str, indent=2)
    Path(report.path).write_text(f"# Data validation: {data_dir}\n\n```json\n{text}\n```\n")
    if not result.usable:
        raise UnusableData(result.reason)  # the file:line reason of `newsrec data validate`
    shutil.copytree(local, dataset.path, ignore=shutil.ignore_patterns(".*"))
    if staged:
        shutil.rmtree(staged, ignore_errors=True)
    dataset.metadata["source"] = data_dir
    dataset.metadata["fingerprint"] = data_fingerprint
    dataset.metadata["splits"] = [s.name for s in result.splits]
