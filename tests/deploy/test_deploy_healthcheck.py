"""The image's HEALTHCHECK command against a real gRPC health service on loopback."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent import futures

import grpc
import pytest
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from services import healthcheck


@pytest.fixture
def health_server() -> Iterator[tuple[int, health.HealthServicer]]:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield port, servicer
    finally:
        server.stop(grace=None)


def test_serving_exits_zero(
    health_server: tuple[int, health.HealthServicer], capsys: pytest.CaptureFixture[str]
) -> None:
    port, servicer = health_server
    servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    assert healthcheck.main(["--port", str(port)]) == 0
    assert "SERVING" in capsys.readouterr().out


def test_not_serving_exits_one(
    health_server: tuple[int, health.HealthServicer], capsys: pytest.CaptureFixture[str]
) -> None:
    port, servicer = health_server
    servicer.set("", health_pb2.HealthCheckResponse.NOT_SERVING)
    assert healthcheck.main(["--port", str(port)]) == 1
    assert "NOT_SERVING" in capsys.readouterr().err


def test_unknown_service_name_exits_one(health_server: tuple[int, health.HealthServicer]) -> None:
    port, servicer = health_server
    servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    assert healthcheck.main(["--port", str(port), "--service", "newsrec.v1.Nope"]) == 1


def test_nothing_listening_exits_one(capsys: pytest.CaptureFixture[str]) -> None:
    # Port 1 on loopback: nothing listens there, the call fails fast.
    assert healthcheck.main(["--port", "1", "--timeout", "1"]) == 1
    assert "UNAVAILABLE" in capsys.readouterr().err


def test_port_comes_from_the_environment() -> None:
    assert healthcheck.default_port({"NEWSREC_GRPC_PORT": "6000"}) == 6000
    assert healthcheck.default_port({"NEWSREC_SERVICE": "ranker"}) == 50054
    assert healthcheck.default_port({}) == 50051
    with pytest.raises(SystemExit, match="NEWSREC_GRPC_PORT='x' is not a port number"):
        healthcheck.default_port({"NEWSREC_GRPC_PORT": "x"})
    with pytest.raises(SystemExit, match="NEWSREC_SERVICE='web'"):
        healthcheck.default_port({"NEWSREC_SERVICE": "web"})
