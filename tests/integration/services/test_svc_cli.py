"""`newsrec serve --all` / `--service` and `newsrec recommend` as a person runs them."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from svc_helpers import NEWSREC, REPO, free_port

from newsrec.data import read_behaviors


def _wait_serving(port: int, proc: subprocess.Popen[str], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
        stub = health_pb2_grpc.HealthStub(ch)
        while time.monotonic() < deadline:
            assert proc.poll() is None, proc.communicate()[1][-3000:]
            try:
                if stub.Check(health_pb2.HealthCheckRequest(), timeout=1).status == 1:
                    return
            except grpc.RpcError:
                pass
            time.sleep(0.05)  # a health check is cheap: poll fast, bounded by the deadline
    raise TimeoutError(f"not SERVING on {port}")


def _env() -> dict[str, str]:
    return {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "OMP_NUM_THREADS": "1"}


def test_serve_all_then_recommend_then_sigterm(trained_run: Path, tmp_path: Path) -> None:
    port = free_port()
    news = [
        "--news",
        str(trained_run / "data/train/news.tsv"),
        "--news",
        str(trained_run / "data/dev/news.tsv"),
    ]
    proc = subprocess.Popen(
        [*NEWSREC, "serve", "--all", "--serving", str(trained_run / "serving"), *news]
        + ["--milvus-uri", str(tmp_path / "m.db"), "--port", str(port), "--metrics-port", str(free_port())],
        cwd=REPO,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _wait_serving(port, proc)
        imps, _ = read_behaviors(trained_run / "data/dev/behaviors.tsv")
        imp = next(i for i in imps if len(i.history) >= 2)
        out = subprocess.run(
            [*NEWSREC, "recommend", "--user", imp.user_id, "--history", ",".join(imp.history), "--k", "5"]
            + ["--target", f"127.0.0.1:{port}"],
            cwd=REPO,
            env={**_env(), "COLUMNS": "200"},
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        ).stdout
        assert "Recommendations for" in out and "variant default" in out and "degraded no" in out, out
        assert sum(1 for line in out.splitlines() if line.strip().startswith("│ ")) >= 5, out
    finally:
        proc.send_signal(signal.SIGTERM)
        stdout, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 0, stderr[-3000:]
    assert "gateway" in stdout and f"localhost:{port}" in stdout  # the printed port table


def test_serve_one_service_health_and_sigterm(trained_run: Path) -> None:
    port = free_port()
    proc = subprocess.Popen(
        [*NEWSREC, "serve", "--service", "ranker", "--serving", str(trained_run / "serving")]
        + ["--port", str(port), "--metrics-port", str(free_port())],
        cwd=REPO,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _wait_serving(port, proc)
    finally:
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 0, stderr[-3000:]
    assert '"msg": "signal received, draining"' in stderr


def test_serve_rejects_bad_flags() -> None:
    import typer
    from typer.testing import CliRunner

    from services.cli import register

    app = typer.Typer()
    register(app)
    runner = CliRunner()
    out = runner.invoke(app, ["serve"], env={"NEWSREC_SERVICE": "", "NEWSREC_CONFIG": ""})
    assert out.exit_code == 2 and "give --all or --service NAME" in out.output
    out = runner.invoke(app, ["serve", "--all", "--service", "ranker"])
    assert out.exit_code == 2 and "not both" in out.output
    out = runner.invoke(app, ["serve", "--service", "ranker", "--metrics-port", "99999"])
    assert out.exit_code == 2 and "metrics_port" in out.output and "Traceback" not in out.output


def test_serve_on_a_busy_port_is_a_one_line_error(tmp_path: Path) -> None:
    """A port already in use is an operator's problem: one error line, exit 1, no traceback."""
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        out = subprocess.run(
            [*NEWSREC, "serve", "--service", "ranker", "--serving", str(tmp_path / "none")]
            + ["--port", str(port), "--metrics-port", str(free_port())],
            cwd=REPO,
            env={**_env(), "NEWSREC_CONFIG": "", "COLUMNS": "60"},
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert out.returncode == 1, out.stderr[-3000:]
    assert "Traceback" not in out.stderr, out.stderr[-3000:]
    errors = [line for line in out.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and f"could not bind gRPC port [::]:{port}" in errors[0], out.stderr
    assert f"(gRPC port {port}, metrics port" in errors[0]


def test_serve_startup_failures_are_one_line_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    """A busy port (OSError; services.server turns grpc's bind RuntimeError into one, see
    test_serve_on_a_busy_port_is_a_one_line_error) and a readiness timeout (TimeoutError)
    print one line and exit 1; any other exception is a bug and keeps its traceback."""
    import typer
    from typer.testing import CliRunner

    import services.logs
    import services.run
    from services.cli import register

    app = typer.Typer()
    register(app)
    monkeypatch.setattr(services.logs, "setup_logging", lambda level: None)  # keep pytest's logging
    failures: list[BaseException] = [
        OSError(98, "Address already in use"),
        TimeoutError("retrieval/default not ready after 600s"),
    ]
    for failure in failures:

        def fail(config: object, on_ready: object = None, _exc: BaseException = failure) -> None:
            raise _exc

        monkeypatch.setattr(services.run, "serve_all", fail)
        out = CliRunner().invoke(
            app, ["serve", "--all", "--port", "0", "--metrics-port", "9"], env={"COLUMNS": "40"}
        )
        assert out.exit_code == 1, (failure, out.output)
        lines = out.output.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: cannot serve: "), out.output
        assert str(failure) in lines[0] and "Traceback" not in out.output
        # which ports, unless the ports are not the problem
        assert lines[0].endswith("(gRPC port 0, metrics port 9)") != isinstance(failure, TimeoutError)

    def bug(config: object, on_ready: object = None) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr(services.run, "serve_all", bug)
    out = CliRunner().invoke(app, ["serve", "--all", "--port", "0", "--metrics-port", "9"])
    assert out.exit_code == 1 and isinstance(out.exception, RuntimeError) and "a bug" in str(out.exception)


@pytest.mark.parametrize("mode", [["--all"], ["--service", "ranker"]], ids=["all", "one"])
def test_serve_with_a_bad_registry_prints_one_line(tmp_path: Path, mode: list[str]) -> None:
    """Issue 15 defect 9: a registry without the model printed a JSON traceback per server
    (6 KB) before the error; a split-mode service stayed NOT_SERVING saying nothing."""
    (tmp_path / "registry").mkdir()
    out = subprocess.run(
        [*NEWSREC, "serve", *mode, "--registry", str(tmp_path / "registry")]
        + ["--milvus-uri", str(tmp_path / "m.db"), "--port", "0", "--metrics-port", "0"],
        cwd=REPO,
        env={**_env(), "NEWSREC_CONFIG": "", "COLUMNS": "60"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 2, out.stderr[-3000:]
    assert "Traceback" not in out.stderr and '"exc"' not in out.stderr, out.stderr[-3000:]
    errors = [line for line in out.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "has no current version in" in errors[0], out.stderr
    assert '"level": "ERROR"' not in out.stderr


def test_newsrec_version() -> None:
    from newsrec import __version__

    out = subprocess.run(
        [*NEWSREC, "--version"], cwd=REPO, env=_env(), capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0 and out.stdout.strip() == f"newsrec {__version__}"
