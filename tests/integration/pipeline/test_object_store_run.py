"""The pipeline with its dataset and registry in an S3 bucket: moto's S3 server (a real HTTP
S3 API, started here on a free port) plays the object store, s3fs talks to it through the
usual AWS environment, and kfp.local runs every step as a subprocess of this process."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from newsrec.data.synth import generate
from pipelines.cli import _params, data_fingerprint, run_local

pytestmark = pytest.mark.slow
BUCKET = "newsrec-test"


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A moto S3 server on loopback; the environment points AWS clients (s3fs, boto3) at it."""
    moto_server = pytest.importorskip("moto.server", reason="the dev extra moto[s3] is not installed")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    for key, value in {
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": endpoint,  # botocore's standard override: what a MinIO user sets
    }.items():
        monkeypatch.setenv(key, value)
    try:
        yield endpoint
    finally:
        server.stop()


def _fs():  # type: ignore[no-untyped-def]
    import s3fs

    return s3fs.S3FileSystem(skip_instance_cache=True)


def test_pipeline_reads_s3_data_and_publishes_its_registry_there(s3: str, tmp_path: Path) -> None:
    data, out = tmp_path / "data", tmp_path / "out"
    generate("tiny", 7, data)
    fs = _fs()
    fs.mkdir(BUCKET)
    fs.put(str(data) + "/", f"{BUCKET}/mind/", recursive=True)
    uri = f"s3://{BUCKET}/mind"
    fingerprint = data_fingerprint(uri)
    assert fingerprint == data_fingerprint(uri) and len(fingerprint) == 16
    params = {
        "data_dir": uri,
        "data_fingerprint": fingerprint,
        "milvus_uri": str(out / "milvus.db"),
        "registry_root": f"s3://{BUCKET}/registry",
        "model_name": "s3m",
        "epochs": 1,
        "output_dim": 32,
    }
    summary = run_local(_params(**params), out)
    version = summary["version"]
    assert summary["manifest"] == f"s3://{BUCKET}/registry/models/s3m/{version}/manifest.json"

    fs = _fs()
    assert fs.cat_file(f"{BUCKET}/registry/models/s3m/CURRENT").decode().strip() == version
    manifest = json.loads(fs.cat_file(f"{BUCKET}/registry/models/s3m/{version}/manifest.json"))
    assert manifest["name"] == "s3m" and manifest["version"] == version
    files = fs.find(f"{BUCKET}/registry/models/s3m/{version}")
    assert any(f.endswith("serving/config.json") for f in files)
    assert any(f.endswith("evaluation/metrics.json") for f in files)
    # the bucket's registry is a registry: download it and verify every checksum
    from newsrec.registry import Registry, download_tree

    local = download_tree(f"s3://{BUCKET}/registry", tmp_path / "registry_copy")
    Registry(local).resolve("s3m").verify()

    # changed bytes behind the same URI: a new fingerprint (the ingest cache key changes)
    fs.pipe_file(f"{BUCKET}/mind/train/news.tsv", fs.cat_file(f"{BUCKET}/mind/train/news.tsv") + b"")
    fs.pipe_file(f"{BUCKET}/mind/extra.txt", b"x")
    assert data_fingerprint(uri) != fingerprint
