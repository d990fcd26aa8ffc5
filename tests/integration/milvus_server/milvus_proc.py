"""Start a real Milvus server on this machine: the embedded standalone Milvus 2.3.5 of the
PyPI package `milvus` (a dev extra, never a runtime dependency).

Used by the server test suite (conftest.py), bench/retrieval_server.py and
`make demo MILVUS=server`. As a script it runs a server until SIGTERM/SIGINT:

    .venv/bin/python tests/integration/milvus_server/milvus_proc.py --dir /tmp/m --port 19530

Two servers on one machine: the package resolves a free port for every Milvus component,
but the embedded etcd listens on the fixed 2379/2380 unless given a config file, so a
second server (another test run, a demo) would die at start. Each server here gets an etcd
config with free ports (`ETCD_CONFIG_PATH`, Milvus' environment override of etcd.config.path).

Restarts: every Milvus component registers its address in etcd, and a killed server leaves
those sessions behind, so a restart must reuse the very same ports (as a pod's fixed ports
do), or the new proxy keeps dialling the dead coordinators. The ports resolved at the first
start are pinned for the next ones, and probed with SO_REUSEADDR (the package probes without
it, so a port still in TIME_WAIT after the kill would look taken).
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _etcd_config(path: Path) -> Path:
    """An embedded-etcd config on free ports (kept across restarts of the same server)."""
    if not path.exists():
        peer, client = free_port(), free_port()
        path.write_text(
            "name: default\n"
            f"listen-peer-urls: http://127.0.0.1:{peer}\n"
            f"initial-advertise-peer-urls: http://127.0.0.1:{peer}\n"
            f"initial-cluster: default=http://127.0.0.1:{peer}\n"
            f"listen-client-urls: http://127.0.0.1:{client}\n"
            f"advertise-client-urls: http://127.0.0.1:{client}\n"
        )
    return path


def _server(base_dir: Path, port: int, pinned: dict[str, int]) -> Any:
    """A `milvus.MilvusServer` whose port probe tolerates TIME_WAIT, with `pinned` ports."""
    from milvus import MilvusServer, MilvusServerConfig

    class _Config(MilvusServerConfig):  # type: ignore[misc]
        def try_bind_port(self, port: int) -> Any:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind(("127.0.0.1", port))
                sock.listen()
                return sock
            except OSError:
                sock.close()
                return None

    server = MilvusServer(_Config())
    server.set_base_dir(str(base_dir))
    server.config.configs.update(pinned)
    server.listen_port = port
    return server


@dataclass
class MilvusServerProc:
    """One embedded Milvus server process, restartable in place (same port, same data)."""

    base_dir: Path
    port: int = field(default_factory=free_port)
    server: Any = field(default=None, repr=False)
    pinned: dict[str, int] = field(default_factory=dict)  # component ports of the first start

    @property
    def uri(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return bool(self.server is not None and self.server.running)

    def start(self) -> float:
        """Start (or restart) the server and wait for its health check; the seconds it took."""
        self.base_dir.mkdir(parents=True, exist_ok=True)
        etcd = _etcd_config(self.base_dir / "embedEtcd.yaml")
        t = time.monotonic()
        self.server = _server(self.base_dir / "milvus", self.port, self.pinned)
        old = os.environ.get("ETCD_CONFIG_PATH")
        os.environ["ETCD_CONFIG_PATH"] = str(etcd)  # read by the child only; restored below
        try:
            self.server.start()  # blocks until /healthz answers OK; raises on timeout
        finally:
            if old is None:
                os.environ.pop("ETCD_CONFIG_PATH", None)
            else:
                os.environ["ETCD_CONFIG_PATH"] = old
        items = self.server.config.configurable_items
        self.pinned = {k: int(v[1]) for k, v in items.items() if k.endswith("_port") and v[1]}
        self._wait_loaded()
        return time.monotonic() - t

    def _wait_loaded(self, timeout: float = 180.0) -> None:
        """After a restart the server answers /healthz, then reloads its loaded collections in
        the background (reads meanwhile fail or stall): wait until none is still loading."""
        from pymilvus import MilvusClient

        client = MilvusClient(uri=self.uri)
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                states = [str(client.get_load_state(c)["state"]) for c in client.list_collections()]
                if not any("Loading" in s for s in states):
                    return
                time.sleep(0.5)
            raise TimeoutError(f"Milvus at {self.uri} still loading collections after {timeout:.0f} s")
        finally:
            client.close()

    def stop(self) -> None:
        """SIGTERM, SIGKILL after 1 s (what `MilvusServer.stop` does): close to a crash."""
        if self.server is not None:
            self.server.stop()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dir", type=Path, required=True, help="data and logs of the server")
    p.add_argument("--port", type=int, default=0, help="gRPC port (0: a free one)")
    args = p.parse_args()
    proc = MilvusServerProc(args.dir, args.port or free_port())
    took = proc.start()
    print(f"milvus server {proc.uri} up in {took:.1f} s (data {args.dir})", flush=True)

    def _stop(*_: Any) -> None:
        proc.stop()
        sys.exit(0)

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    while True:
        time.sleep(1)


if __name__ == "__main__":
    main()
