"""Pipeline compile (IR YAML), cache-key dependencies, and `submit` against a recording HTTP server.

There is no Kubernetes cluster here: `submit` talks to a real local HTTP server that
answers like the KFP v2beta1 API and records the requests kfp.Client sends.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from pipelines.cli import app
from pipelines.newsrec_pipeline import COMPONENT_NAMES, STEP_DEPS, local_cache_keys

ROOT = Path(__file__).resolve().parents[3]
STEP_OF_TASK = {
    "ingest-data": "ingest",
    "embed-news": "embed",
    "build-graph": "graph",
    "train-two-tower": "towers",
    "train-ranker": "ranker",
    "evaluate": "evaluate",
    "build-index": "index",
    "publish-model": "publish",
}


def _compile(tmp_path: Path, env: dict[str, str] | None = None) -> dict[str, Any]:
    out = tmp_path / "pipeline.yaml"
    proc = subprocess.run(
        [sys.executable, "-c", "from pipelines.cli import app; app()", "compile", "--out", str(out)],
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    docs = list(yaml.safe_load_all(out.read_text()))
    return {"spec": docs[0], "platform": docs[1] if len(docs) > 1 else {}}


def test_compile_has_every_component_secret_retries_and_image(tmp_path: Path) -> None:
    got = _compile(tmp_path, {"NEWSREC_IMAGE": "registry.example/newsrec:test"})
    spec = got["spec"]
    tasks = spec["root"]["dag"]["tasks"]
    assert set(tasks) == set(COMPONENT_NAMES)
    for name in COMPONENT_NAMES:
        executor = spec["deploymentSpec"]["executors"][f"exec-{name}"]["container"]
        assert executor["image"] == "registry.example/newsrec:test"
        assert "pip install" not in " ".join(executor["command"])  # nothing installed at run time
        assert tasks[name]["cachingOptions"].get("enableCache") is True
    for name in ("ingest-data", "embed-news", "build-index", "publish-model"):
        assert tasks[name]["retryPolicy"]["maxRetryCount"] == 3
    assert "retryPolicy" not in tasks["train-two-tower"]
    secret = got["platform"]["platforms"]["kubernetes"]["deploymentSpec"]["executors"]["exec-embed-news"]
    env = secret["secretAsEnv"][0]
    assert env["secretName"] == "newsrec-embedding-api"
    assert env["keyToEnv"] == [{"envVar": "OPENAI_API_KEY", "secretKey": "api-key"}]
    assert "OPENAI_API_KEY" not in spec["root"]["inputDefinitions"]["parameters"]  # never a parameter
    # the wiring matches STEP_DEPS, which the local cache keys are computed from
    for task, step in STEP_OF_TASK.items():
        upstream = {STEP_OF_TASK[t] for t in tasks[task].get("dependentTasks", [])}
        assert upstream == set(STEP_DEPS[step][0]), task


def test_cache_keys_rerun_only_dependent_steps() -> None:
    base = {"data_dir": "/d", "milvus_uri": "/m.db", "registry_root": "/r", "model_version": "v1"}
    k1 = local_cache_keys(base)
    assert k1 == local_cache_keys(dict(base))
    k2 = local_cache_keys({**base, "index_type": "IVF_FLAT"})
    assert {s for s in k1 if k1[s] != k2[s]} == {"index", "publish"}
    k3 = local_cache_keys({**base, "epochs": 7})
    assert {s for s in k1 if k1[s] != k3[s]} == {"towers", "ranker", "evaluate", "index", "publish"}
    k4 = local_cache_keys({**base, "data_fingerprint": "changed"})
    assert all(k1[s] != k4[s] for s in k1)


class _Recorder(BaseHTTPRequestHandler):
    """Answers like the KFP v2beta1 REST API and records every request."""

    log: list[dict[str, Any]] = []

    def _reply(self, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        body = json.loads(raw) if raw else None
        self.log.append({"method": self.command, "path": self.path, "body": body})
        if self.command == "POST" and self.path.startswith("/apis/v2beta1/experiments"):
            self._reply({"experiment_id": "exp-1", "display_name": body["display_name"]})
        elif self.command == "POST" and self.path.startswith("/apis/v2beta1/runs"):
            self._reply({"run_id": "run-42", "display_name": body.get("display_name"), "state": "PENDING"})
        else:
            self._reply({})

    do_GET = do_POST = _handle

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def kfp_server() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    _Recorder.log = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", _Recorder.log
    server.shutdown()
    server.server_close()


def test_submit_sends_compiled_pipeline_and_parameters(kfp_server: tuple[str, list[dict[str, Any]]]) -> None:
    host, log = kfp_server
    args = ["submit", "--host", host, "--data", "s3://bucket/mind", "--milvus-uri", "http://milvus:19530"]
    args += ["--registry-root", "/mnt/registry", "--experiment", "nightly", "--run-name", "r1"]
    args += ["--epochs", "5", "--embedding-provider", "openai", "--embedding-model", "text-embedding-3-small"]
    result = CliRunner().invoke(app, args, env={"KFP_TOKEN": ""})
    assert result.exit_code == 0, result.output
    assert "run-42" in result.output
    runs = [r for r in log if r["method"] == "POST" and r["path"].startswith("/apis/v2beta1/runs")]
    assert len(runs) == 1
    run = runs[0]["body"]
    assert run["display_name"] == "r1" and run["experiment_id"] == "exp-1"
    params = run["runtime_config"]["parameters"]
    assert params["data_dir"] == "s3://bucket/mind" and params["epochs"] == 5
    assert params["embedding_provider"] == "openai" and params["milvus_uri"] == "http://milvus:19530"
    assert params["model_version"].startswith("v") and len(params["model_version"]) == 11
    assert json.loads(params["config_json"])["embedding_model"] == "text-embedding-3-small"
    assert not any("key" in name.lower() for name in params)  # the API key never travels as a parameter
    spec = run["pipeline_spec"]["pipeline_spec"]
    assert set(spec["root"]["dag"]["tasks"]) == set(COMPONENT_NAMES)
    platform = run["pipeline_spec"]["platform_spec"]["platforms"]["kubernetes"]
    secret_env = platform["deploymentSpec"]["executors"]["exec-embed-news"]["secretAsEnv"][0]
    assert secret_env["secretName"] == "newsrec-embedding-api"  # the cluster run gets the secret
    exps = [r for r in log if r["method"] == "POST" and r["path"].startswith("/apis/v2beta1/experiments")]
    assert exps and exps[0]["body"]["display_name"] == "nightly"


def test_submit_rejects_bad_host() -> None:
    result = CliRunner().invoke(
        app, ["submit", "--host", "cluster:8080", "--data", "d", "--milvus-uri", "m", "--registry-root", "r"]
    )
    assert result.exit_code != 0 and "must start with http" in result.output
