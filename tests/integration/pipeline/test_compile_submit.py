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


def _compile(tmp_path: Path, env: dict[str, str] | None = None, *flags: str) -> dict[str, Any]:
    out = tmp_path / "pipeline.yaml"
    proc = subprocess.run(
        [sys.executable, "-c", "from pipelines.cli import app; app()", "compile", "--out", str(out), *flags],
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
    args += ["--registry-root", "s3://bucket/registry", "--experiment", "nightly", "--run-name", "r1"]
    args += ["--storage", "object", "--data-fingerprint", "f00d"]
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
    assert params["data_fingerprint"] == "f00d"  # the content hash is part of the cache key
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


def _executors(got: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    containers = {k: v["container"] for k, v in got["spec"]["deploymentSpec"]["executors"].items()}
    platform = got["platform"].get("platforms", {}).get("kubernetes", {}).get("deploymentSpec", {})
    return containers, platform.get("executors", {})


def _no_local_paths(got: dict[str, Any]) -> None:
    """Nothing in the IR names a path of the submitting machine (the repo, the venv, /tmp, home)."""
    text = yaml.safe_dump(got)
    for local in {str(ROOT), sys.prefix, str(Path.home()), "/tmp/"}:
        assert local not in text, f"the IR names {local}, which exists only on this machine"
    defaults = got["spec"]["root"]["inputDefinitions"]["parameters"]
    for name in ("data_dir", "registry_root", "milvus_uri"):
        assert "defaultValue" not in defaults[name], f"{name} must be given per run"


def test_compiled_ir_pvc_mode_mounts_the_claim_and_sets_resources_everywhere(tmp_path: Path) -> None:
    got = _compile(tmp_path, None, "--gpu", "nvidia.com/gpu")
    containers, platform = _executors(got)
    assert set(containers) == {f"exec-{n}" for n in COMPONENT_NAMES}
    for name, container in containers.items():
        res = container["resources"]
        for key in ("cpuRequest", "cpuLimit", "memoryRequest", "memoryLimit"):
            assert res.get(key), f"{name}: no {key}"
        assert res["cpuLimit"] >= res["cpuRequest"] and res["memoryLimit"] >= res["memoryRequest"]
        mounts = platform[name]["pvcMount"]
        assert len(mounts) == 1 and mounts[0]["mountPath"] == "/mnt/newsrec", name
        claim = mounts[0].get("pvcNameParameter") or mounts[0].get("taskOutputParameter") or mounts[0]
        assert "pvc_name" in json.dumps(claim), f"{name}: the claim is not the pvc_name parameter"
    towers, ingest = containers["exec-train-two-tower"], containers["exec-ingest-data"]
    assert towers["resources"]["memoryLimit"] > ingest["resources"]["memoryLimit"]  # torch steps get more
    assert containers["exec-embed-news"]["resources"]["cpuLimit"] > ingest["resources"]["cpuLimit"]
    acc = towers["resources"]["accelerator"]
    assert acc["resourceType"] == "nvidia.com/gpu" and int(acc["resourceCount"]) == 1
    assert not any(
        "accelerator" in c["resources"] for n, c in containers.items() if n != "exec-train-two-tower"
    )
    params = got["spec"]["root"]["inputDefinitions"]["parameters"]
    assert params["pvc_name"]["defaultValue"] == "newsrec-data"
    _no_local_paths(got)
    # the KFP UI gets headline metrics and an HTML report (plots inlined) from evaluate
    outs = got["spec"]["components"]["comp-evaluate"]["outputDefinitions"]["artifacts"]
    assert outs["metrics"]["artifactType"]["schemaTitle"] == "system.Metrics"
    assert outs["html_report"]["artifactType"]["schemaTitle"] == "system.HTML"


def test_compiled_ir_object_mode_mounts_nothing(tmp_path: Path) -> None:
    got = _compile(tmp_path, None, "--storage", "object")
    containers, platform = _executors(got)
    assert all("resources" in c for c in containers.values())
    assert not any("pvcMount" in e for e in platform.values())
    assert not any("accelerator" in c["resources"] for c in containers.values())  # no --gpu
    _no_local_paths(got)


def test_compile_help_documents_the_image_and_storage() -> None:
    out = CliRunner().invoke(app, ["compile", "--help"], env={"COLUMNS": "200"}).output
    assert "NEWSREC_IMAGE" in out and "--storage" in out and "--gpu" in out


@pytest.mark.parametrize(
    ("flags", "why"),
    [
        (["--storage", "object", "--data", "/home/me/mind", "--registry-root", "s3://b/r"], "needs s3://"),
        (
            ["--storage", "pvc", "--data", "/home/me/mind", "--registry-root", "/mnt/newsrec/r"],
            "/mnt/newsrec/",
        ),
        (
            ["--storage", "pvc", "--data", "/mnt/newsrec/mind", "--registry-root", "/mnt/newsrec/r"],
            "Milvus server",
        ),
    ],
)
def test_submit_rejects_locations_a_pod_cannot_see(
    kfp_server: tuple[str, list[dict[str, Any]]], flags: list[str], why: str
) -> None:
    host, log = kfp_server
    milvus = "/tmp/m.db" if why == "Milvus server" else "http://milvus:19530"
    result = CliRunner().invoke(
        app, ["submit", "--host", host, "--milvus-uri", milvus, *flags], env={"COLUMNS": "200"}
    )
    assert result.exit_code != 0 and why in result.output, result.output
    assert not log  # nothing reached the cluster


def test_submit_pvc_mode_passes_the_claim(kfp_server: tuple[str, list[dict[str, Any]]]) -> None:
    host, log = kfp_server
    args = [
        "submit",
        "--host",
        host,
        "--data",
        "/mnt/newsrec/mind",
        "--registry-root",
        "/mnt/newsrec/registry",
    ]
    args += ["--milvus-uri", "http://milvus:19530", "--pvc-name", "team-data"]
    result = CliRunner().invoke(app, args, env={"KFP_TOKEN": ""})
    assert result.exit_code == 0, result.output
    run = next(r for r in log if r["method"] == "POST" and r["path"].startswith("/apis/v2beta1/runs"))["body"]
    assert run["runtime_config"]["parameters"]["pvc_name"] == "team-data"
    executors = run["pipeline_spec"]["platform_spec"]["platforms"]["kubernetes"]["deploymentSpec"][
        "executors"
    ]
    assert all(e["pvcMount"][0]["mountPath"] == "/mnt/newsrec" for e in executors.values())
