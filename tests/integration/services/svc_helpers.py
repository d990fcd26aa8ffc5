"""Helpers for the services integration tests: a private redis-server, training a tiny model."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from fixtures_run import train_tiny  # noqa: F401  (moved there; imported from here by older callers)

REPO = Path(__file__).resolve().parents[3]
NEWSREC = [sys.executable, "-c", "from newsrec.cli import main; main()"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class RedisProc:
    proc: subprocess.Popen[bytes]
    port: int

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)


def start_redis() -> RedisProc:
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server not installed (apt-get install redis-server)")
    port = free_port()
    proc = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2) as s:
                s.sendall(b"PING\r\n")
                if s.recv(16).startswith(b"+PONG"):
                    return RedisProc(proc, port)
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError("redis-server did not start")


def versioned_copy(serving: Path, dest: Path, version: str) -> Path:
    """A second model version for A/B tests: the same weights under another version name."""
    shutil.copytree(serving, dest)
    cfg = json.loads((dest / "config.json").read_text())
    cfg["model_version"] = version
    (dest / "config.json").write_text(json.dumps(cfg))
    from newsrec.models.export import seal_serving

    seal_serving(dest)  # an edited copy is a new artifact: seal it, or load_serving refuses it
    return dest
