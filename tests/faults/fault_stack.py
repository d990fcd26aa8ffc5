"""Real processes for the fault suite: a private password-protected redis-server and the four
services, one `newsrec serve --service NAME` process each (the chart's shape), each in its own
process group so kill -9 / SIGSTOP / SIGTERM hit the whole pod-like process tree."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import yaml
from grpc_health.v1 import health_pb2, health_pb2_grpc

from services.generated.newsrec.v1 import recommend_pb2, recommend_pb2_grpc

REPO = Path(__file__).resolve().parents[2]
NEWSREC = [sys.executable, "-c", "from newsrec.cli import main; main()"]
SERVICES = ("user-encoder", "retrieval", "ranker", "gateway", "gateway-pinned")
GATEWAYS = {"unpinned": "gateway", "pinned": "gateway-pinned"}
# Stage deadlines of the gateways: wide, so a loaded 2-core CI box measures the faults, not
# CPU contention (the defaults, 50-100 ms, are for an unloaded node).
TIMEOUTS = {"encode_user": 1.0, "retrieve": 1.0, "rank": 1.0}
REDIS_PASSWORD = "fault-suite-pw-0123456789"
PROBE_OPTIONS = [("grpc.initial_reconnect_backoff_ms", 100), ("grpc.max_reconnect_backoff_ms", 200)]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSREC_")}
    return env | {"HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "OMP_NUM_THREADS": "1"}


@dataclass
class Proc:
    """One restartable process (a service or redis-server) in its own process group."""

    name: str
    argv: list[str]
    log: Path
    env: dict[str, str]
    popen: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.popen = subprocess.Popen(
                self.argv, cwd=REPO, env=self.env, stdout=out, stderr=out, start_new_session=True
            )

    def signal(self, sig: int) -> None:
        assert self.popen is not None
        os.killpg(self.popen.pid, sig)

    def kill(self) -> None:
        """kill -9 of the whole group (a pod killed with its children, e.g. Milvus Lite)."""
        if self.popen is not None and self.popen.poll() is None:
            self.signal(signal.SIGKILL)
            self.popen.wait(10)
        self._reap_group()

    def _reap_group(self) -> None:
        if self.popen is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, signal.SIGKILL)

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None


@dataclass
class FaultStack:
    """redis, the three backends of variant `a` (pinned to registry version v1, as the chart
    starts them) and two gateways in front of them: `gateway` with the variant unpinned and
    `gateway-pinned` with `model_version: v1` (the chart's shape)."""

    root: Path
    ports: dict[str, int] = field(default_factory=dict)
    procs: dict[str, Proc] = field(default_factory=dict)
    channels: dict[str, grpc.Channel] = field(default_factory=dict)

    @property
    def redis_url(self) -> str:
        return f"redis://:{REDIS_PASSWORD}@127.0.0.1:{self.ports['redis']}/0"

    def config(self, service: str, registry: Path) -> dict[str, Any]:
        kind = "gateway" if service.startswith("gateway") else service
        cfg: dict[str, Any] = {
            "service": kind,
            "host": "127.0.0.1",
            "grpc_port": self.ports[service],
            "metrics_port": free_port(),
            "grace_seconds": 2.0,
            "registry": str(registry),
            "model_name": "newsrec",
            "model_version": "v1",
            "variant": "a",
            # 50 ms (the default) trips on a loaded CI box and skips Redis for 1 s each time
            "cache": {"redis_url": self.redis_url, "timeout_seconds": 0.25},
        }
        if service == "retrieval":
            cfg["milvus_uri"] = str(self.root / "milvus.db")
            # Only UpsertNews embeds text, and no scenario upserts: an endpoint that is never
            # called keeps the local model out of retrieval's start (25 s on a loaded box).
            cfg["text_provider"] = {
                "provider": "openai",
                "base_url": "http://127.0.0.1:9/v1",
                "model": "text-embedding-3-small",
                "dimensions": 384,
            }
        if kind == "gateway":
            variant = {
                "name": "a",
                "model_version": "v1" if service == "gateway-pinned" else "",
                "user_encoder": f"127.0.0.1:{self.ports['user-encoder']}",
                "retrieval": f"127.0.0.1:{self.ports['retrieval']}",
                "ranker": f"127.0.0.1:{self.ports['ranker']}",
            }
            cfg["gateway"] = {"variants": [variant], "in_process": False, "timeouts": TIMEOUTS}
        return cfg

    def build(self, registry: Path) -> None:
        self.ports = {name: free_port() for name in (*SERVICES, "redis")}
        redis_argv = ["redis-server", "--port", str(self.ports["redis"]), "--bind", "127.0.0.1"]
        redis_argv += ["--save", "", "--appendonly", "no", "--requirepass", REDIS_PASSWORD]
        self.procs["redis"] = Proc("redis", redis_argv, self.root / "redis.log", _env())
        for name in SERVICES:
            path = self.root / f"{name}.yaml"
            path.write_text(yaml.safe_dump(self.config(name, registry)))
            env = _env() | {"NEWSREC_CONFIG": str(path), "OPENAI_API_KEY": "sk-unused-by-the-fault-suite"}
            kind = "gateway" if name.startswith("gateway") else name
            self.procs[name] = Proc(
                name, [*NEWSREC, "serve", "--service", kind], self.root / f"{name}.log", env
            )

    def start(self, timeout: float = 240) -> None:
        self.procs["redis"].start()
        self.wait_redis()
        for name in SERVICES:
            self.procs[name].start()
        for name in SERVICES:
            self.wait_serving(name, timeout)
        self.channels = {
            shape: grpc.insecure_channel(f"127.0.0.1:{self.ports[name]}") for shape, name in GATEWAYS.items()
        }

    def restart(self, name: str, wait: bool = True) -> None:
        self.procs[name].kill()
        self.procs[name].start()
        if wait:
            self.wait_redis() if name == "redis" else self.wait_serving(name)

    def wait_redis(self, timeout: float = 10) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.ports["redis"]), timeout=0.2) as s:
                    s.sendall(f"AUTH {REDIS_PASSWORD}\r\nPING\r\n".encode())
                    time.sleep(0.05)
                    if b"+PONG" in s.recv(64):
                        return
            except OSError:
                pass
            time.sleep(0.05)
        raise TimeoutError("redis-server did not start")

    def redis(self, *command: str) -> bytes:
        out = subprocess.run(
            ["redis-cli", "-p", str(self.ports["redis"]), *command],
            env={**os.environ, "REDISCLI_AUTH": REDIS_PASSWORD},
            capture_output=True,
            timeout=10,
            check=True,
        )
        return out.stdout

    def wait_serving(self, name: str, timeout: float = 180) -> float:
        """Seconds until `name` reports SERVING on its health service."""
        t0 = time.monotonic()
        proc = self.procs[name]
        # short reconnect backoff: this measures the process, not gRPC's default backoff
        # (1 s growing 1.6x up to 120 s) after the port was still closed at the first try
        with grpc.insecure_channel(f"127.0.0.1:{self.ports[name]}", options=PROBE_OPTIONS) as ch:
            stub = health_pb2_grpc.HealthStub(ch)
            while time.monotonic() - t0 < timeout:
                if not proc.alive():
                    raise AssertionError(f"{name} exited: {proc.log.read_text()[-3000:]}")
                try:
                    if stub.Check(health_pb2.HealthCheckRequest(), timeout=1).status == 1:
                        return time.monotonic() - t0
                except grpc.RpcError:
                    pass
                time.sleep(0.1)
        raise TimeoutError(f"{name} not SERVING after {timeout}s: {proc.log.read_text()[-3000:]}")

    def recommend(
        self, shape: str, user: str, history: list[str], k: int = 5, timeout: float = 2.0
    ) -> recommend_pb2.RecommendResponse:
        stub = recommend_pb2_grpc.RecommendServiceStub(self.channels[shape])
        return stub.Recommend(
            recommend_pb2.RecommendRequest(user_id=user, history_ids=history, k=k), timeout=timeout
        )

    def stop(self) -> None:
        for channel in self.channels.values():
            channel.close()
        for proc in self.procs.values():
            if proc.alive():
                proc.signal(signal.SIGCONT)
            proc.kill()


def redis_available() -> bool:
    return shutil.which("redis-server") is not None and shutil.which("redis-cli") is not None
