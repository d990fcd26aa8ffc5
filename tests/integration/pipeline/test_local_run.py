"""End to end: the real pipeline on tiny synthetic data through kfp.local, then cached re-runs.

One run of every step (offline: local MiniLM embeddings, Milvus Lite, filesystem registry),
a re-run with the same inputs that executes nothing, and a run with another index type
that re-executes only the index and publish steps.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest

from newsrec.data.synth import generate
from newsrec.index.milvus import MilvusIndex
from newsrec.registry import Registry
from pipelines.cli import _params, data_fingerprint, run_local

pytestmark = pytest.mark.slow


def _cache_hits(caplog: pytest.LogCaptureFixture) -> set[str]:
    hits = {m.group(1) for r in caplog.records if (m := re.search(r"Task (\S+) cache hit", r.getMessage()))}
    caplog.clear()
    return hits


def test_pipeline_runs_locally_and_caches_steps(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    data, out = tmp_path / "data", tmp_path / "out"
    generate("tiny", 7, data)
    common = {
        "data_dir": str(data),
        "data_fingerprint": data_fingerprint(data),
        "milvus_uri": str(out / "milvus.db"),
        "registry_root": str(out / "registry"),
        "model_name": "tt",
        "epochs": 1,
        "output_dim": 32,
    }
    caplog.set_level(logging.INFO)
    first = run_local(_params(**common, index_type="FLAT"), out)
    assert _cache_hits(caplog) == set()
    reg = Registry(out / "registry")
    manifest = reg.resolve("tt")
    assert manifest.version == first["version"]
    manifest.verify()
    assert (manifest.artifact_dir("serving") / "config.json").is_file()
    assert (manifest.artifact_dir("evaluation") / "metrics.json").is_file()
    assert manifest.index is not None and manifest.index.alias == "news_tt"
    assert 0.0 <= first["metrics"]["two_tower_auc"] <= 1.0
    assert manifest.embedding.provider == "local"

    idx = MilvusIndex.from_uri(str(out / "milvus.db"))
    try:
        assert idx.resolve_alias("news_tt") == f"news_tt_{first['version']}"
        assert idx.count("news_tt") == manifest.index.count > 100
    finally:
        idx.close(stop_lite=True)  # Milvus Lite: one process at a time per file

    again = run_local(_params(**common, index_type="FLAT"), out)
    assert _cache_hits(caplog) == {
        "ingest-data", "embed-news", "build-graph", "train-two-tower",
        "train-ranker", "evaluate", "build-index", "publish-model",
    }  # fmt: skip
    assert again["version"] == first["version"]

    third = run_local(_params(**common, index_type="IVF_FLAT"), out)
    hits = _cache_hits(caplog)
    assert hits == {"ingest-data", "embed-news", "build-graph", "train-two-tower", "train-ranker", "evaluate"}
    assert third["version"] != first["version"] and reg.resolve("tt").version == third["version"]
    assert reg.list_versions("tt") == [first["version"], third["version"]]
    idx = MilvusIndex.from_uri(str(out / "milvus.db"))
    try:
        assert idx.resolve_alias("news_tt") == f"news_tt_{third['version']}"
    finally:
        idx.close(stop_lite=True)
