"""Graceful drain of `serve --all` under load, as a load balancer sees it (issue 15 defect 5)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from svc_drain import check_drain, drain_probe
from svc_helpers import NEWSREC, REPO, free_port
from test_svc_cli import _env, _wait_serving
from test_svc_split import dev_users

DRAIN_S = 1.5


def test_serve_all_sigterm_drains_32_in_flight_calls(trained_run: Path, tmp_path: Path) -> None:
    port = free_port()
    proc = subprocess.Popen(
        [*NEWSREC, "serve", "--all", "--serving", str(trained_run / "serving")]
        + ["--milvus-uri", str(tmp_path / "m.db"), "--port", str(port), "--metrics-port", str(free_port())],
        cwd=REPO,
        env={
            **_env(),
            "NEWSREC_CONFIG": "",
            "NEWSREC_DRAIN_SECONDS": str(DRAIN_S),
            "NEWSREC_GRACE_SECONDS": "5",
        },
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _wait_serving(port, proc)
        report = drain_probe(port, proc, dev_users(trained_run, 64))
    finally:
        if proc.poll() is None:
            proc.kill()
        _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 0, stderr[-3000:]
    check_drain(report, DRAIN_S)
    assert report.exited_at - report.sigterm_at >= DRAIN_S
