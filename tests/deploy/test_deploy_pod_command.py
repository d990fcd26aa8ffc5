"""Run a rendered pod's command for real, without a container runtime or cluster.

The gateway Deployment of the A/B scenario is started as a local process: the image's
entrypoint (`newsrec`) with the manifest's args, the manifest's environment and its
ConfigMap as the config file. Deviations, because this is not a pod: the ports are
free loopback ports (the machine is shared), and NEWSREC_REGISTRY is dropped (no
registry volume here; the gateway then runs without its fallback list). The image's
HEALTHCHECK command and the metrics endpoint are then checked against it.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import grpc
import pytest
from chart_render import env_of, named, render
from prometheus_client.parser import text_string_to_metric_families

from services import healthcheck
from services.generated.newsrec.v1 import recommend_pb2, recommend_pb2_grpc

NEWSREC = Path(sys.executable).parent / "newsrec"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_rendered_gateway_pod_command_serves_health_and_metrics(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    objs = render("ab-split-values.yaml")
    deploy = named(objs, "Deployment", "newsrec-gateway")
    container = deploy["spec"]["template"]["spec"]["containers"][0]
    config = tmp_path / "config.yaml"
    config.write_text(named(objs, "ConfigMap", "newsrec-gateway-config")["data"]["config.yaml"])

    env = {k: v for k, v in env_of(container).items() if isinstance(v, str)}
    assert env["NEWSREC_CONFIG"] == "/etc/newsrec/config.yaml"  # where the ConfigMap is mounted
    grpc_port, metrics_port = _free_port(), _free_port()
    env.update(
        NEWSREC_CONFIG=str(config), NEWSREC_GRPC_PORT=str(grpc_port), NEWSREC_METRICS_PORT=str(metrics_port)
    )
    env.pop("NEWSREC_REGISTRY")
    proc_env = {**os.environ, **env, "HF_HUB_OFFLINE": "1"}

    proc = subprocess.Popen(
        [str(NEWSREC), *container["args"]],
        env=proc_env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        status = 1
        while time.monotonic() < deadline and proc.poll() is None:
            status = healthcheck.main(["--port", str(grpc_port), "--timeout", "1"])
            if status == 0:
                break
            time.sleep(0.05)  # a health check is cheap: poll fast, bounded by the deadline
        assert proc.poll() is None, f"gateway exited: {proc.communicate()[0]}"
        assert status == 0, "health never became SERVING within 60 s"
        # The env-driven default port works too (what the image's HEALTHCHECK does).
        monkeypatch.setenv("NEWSREC_GRPC_PORT", str(grpc_port))
        assert healthcheck.main([]) == 0
        # One real Recommend: no backend exists here, so the answer is degraded (and empty:
        # no registry, no fallback list), but it is an answer, timed under its variant.
        with grpc.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
            answer = recommend_pb2_grpc.RecommendServiceStub(channel).Recommend(
                recommend_pb2.RecommendRequest(user_id="U1", k=5, forced_variant="b"), timeout=10
            )
        assert answer.variant == "b" and answer.model_version == "v2"
        assert list(answer.degraded_reasons) == ["user_encoder_unavailable"]
        with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5) as resp:
            body = resp.read().decode()
        assert re.search(
            r'^newsrec_gateway_request_seconds_count\{code="OK",method="Recommend",variant="b"\} 1\.0$',
            body,
            re.MULTILINE,
        ), body
        assert re.search(
            r'^newsrec_gateway_request_seconds_bucket\{[^}]*variant="b"[^}]*\} 1\.0$', body, re.M
        )
        labelled = [s for family in text_string_to_metric_families(body) for s in family.samples if s.labels]
        assert labelled and all("variant" in s.labels for s in labelled), labelled
    finally:
        proc.send_signal(signal.SIGTERM)  # what the kubelet sends; the server drains and exits
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, proc.stdout.read() if proc.stdout else ""
