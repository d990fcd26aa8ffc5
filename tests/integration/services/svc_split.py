"""One process per service, configured the way the Helm chart configures its pods: a
config file per service (the ConfigMap), NEWSREC_* variables (the Deployment's env), a
variant pinned to a registry version, a private redis-server and Milvus Lite."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import yaml
from grpc_health.v1 import health_pb2, health_pb2_grpc
from svc_helpers import NEWSREC, REPO, free_port

BACKENDS = ("user-encoder", "retrieval", "ranker")
# A registry version unlike the name the artifact was exported with (`run-...`): the
# split-mode defect only shows when the two differ.
PINNED = "v3e58bebdc4"


def publish_pinned(run: Path, root: Path, version: str = PINNED) -> Path:
    """Publish the run's serving artifact as `splitmodel/<version>`; returns the registry root."""
    from newsrec.registry import Registry

    registry = root / "registry"
    Registry(registry).publish(
        "splitmodel",
        version,
        {"serving": run / "serving"},
        config={},
        metrics={},
        embedding={"provider": "local", "model": "all-MiniLM-L6-v2", "dimensions": 384},
        index_info={
            "uri": str(root / "milvus.db"),
            "collection": f"news_split_{version}",
            "alias": "news_split_a",
        },
    )
    return registry


@dataclass
class SplitStack:
    """The four processes; `ports[name]` is each one's gRPC port."""

    procs: dict[str, subprocess.Popen[str]] = field(default_factory=dict)
    ports: dict[str, int] = field(default_factory=dict)
    metrics_ports: dict[str, int] = field(default_factory=dict)
    logs: dict[str, Path] = field(default_factory=dict)

    def log(self, name: str) -> str:
        return self.logs[name].read_text(errors="replace")

    def wait_serving(self, timeout: float = 240) -> None:
        deadline = time.monotonic() + timeout
        for name, port in self.ports.items():
            while not _serving(port):
                proc = self.procs[name]
                assert proc.poll() is None, f"{name} exited: {self.log(name)[-3000:]}"
                assert time.monotonic() < deadline, f"{name} not SERVING: {self.log(name)[-3000:]}"
                time.sleep(0.05)  # a health check is cheap: poll fast, bounded by the deadline

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60) -> dict[str, int]:
        """Signal every process still running, wait, return the exit codes."""
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(sig)
        codes = {}
        for name, proc in self.procs.items():
            try:
                codes[name] = proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                codes[name] = proc.wait(5)
        return codes


def _serving(port: int, target: str = "127.0.0.1") -> bool:
    with grpc.insecure_channel(f"{target}:{port}") as ch:
        try:
            reply = health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(), timeout=1)
        except grpc.RpcError:
            return False
    return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)


def start_split(
    registry: Path,
    redis_url: str,
    milvus_db: Path,
    workdir: Path,
    version: str = PINNED,
    extra: dict[str, Any] | None = None,
    env_extra: dict[str, str] | None = None,
) -> SplitStack:
    """Start user-encoder, retrieval, ranker and a gateway (`in_process: false` is implied:
    separate processes) for one variant `a` pinned to `version`. `extra` is merged into
    every service's config file (e.g. drain_seconds)."""
    stack = SplitStack()
    for name in (*BACKENDS, "gateway"):
        stack.ports[name] = free_port()
        stack.metrics_ports[name] = free_port()
    variant = {
        "name": "a",
        "model_version": version,
        "weight": 100,
        **{svc.replace("-", "_"): f"127.0.0.1:{stack.ports[svc]}" for svc in BACKENDS},
    }
    base_env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "OMP_NUM_THREADS": "1",
        "NEWSREC_REGISTRY": str(registry),
        "NEWSREC_MODEL_NAME": "splitmodel",
        "NEWSREC_LOG_LEVEL": "INFO",
        **(env_extra or {}),
    }
    for name in (*BACKENDS, "gateway"):
        config: dict[str, Any] = dict(extra or {})
        config["host"] = "127.0.0.1"
        env = {
            **base_env,
            "NEWSREC_SERVICE": name,
            "NEWSREC_GRPC_PORT": str(stack.ports[name]),
            "NEWSREC_METRICS_PORT": str(stack.metrics_ports[name]),
        }
        if name == "gateway":
            config["gateway"] = {"variants": [variant], **config.get("gateway", {})}
            env["NEWSREC_REDIS_URL"] = redis_url
        else:
            env |= {"NEWSREC_MODEL_VERSION": version, "NEWSREC_VARIANT": "a"}
        if name == "user-encoder":
            env["NEWSREC_REDIS_URL"] = redis_url
        if name == "retrieval":
            config["text_provider"] = {"provider": "local"}
            env["NEWSREC_MILVUS_URI"] = str(milvus_db)
        path = workdir / f"{name}.yaml"
        path.write_text(yaml.safe_dump(config))
        env["NEWSREC_CONFIG"] = str(path)
        stack.logs[name] = workdir / f"{name}.log"
        with stack.logs[name].open("w") as log:
            stack.procs[name] = subprocess.Popen(
                [*NEWSREC, "serve", "--service", name],
                cwd=REPO,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                text=True,
            )
    return stack
