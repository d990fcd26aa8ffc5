"""Bootstrap behaviour: health transitions, error mapping, draining on stop, metrics endpoint."""

from __future__ import annotations

import threading
import time
import urllib.request
from collections.abc import Iterator

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from svc_fakes import FakeModel

from services import ranker
from services.config import ServeConfig
from services.generated.newsrec.v1 import ranking_pb2, ranking_pb2_grpc
from services.server import NewsrecServer

CFG = ServeConfig.model_validate({"grpc_port": 0, "metrics_port": 0, "host": "127.0.0.1", "variant": "a"})


class _Boom(FakeModel):
    def rank(self, *args: object, **kwargs: object) -> np.ndarray:
        raise RuntimeError("secret internal detail /etc/passwd")


@pytest.fixture
def gated() -> Iterator[tuple[NewsrecServer, int, threading.Event, FakeModel]]:
    gate = threading.Event()
    model = FakeModel()

    def load() -> ranker.RankerDeps:
        gate.wait(10)
        return ranker.RankerDeps(model)

    server, port = ranker.create_server(CFG, load)
    yield server, port, gate, model
    gate.set()
    server.stop(0).wait()


def _health(port: int) -> int:
    with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
        req = health_pb2.HealthCheckRequest(service="")
        return int(health_pb2_grpc.HealthStub(ch).Check(req, timeout=2).status)


def _rank(port: int, timeout: float = 5) -> ranking_pb2.RankResponse:
    with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
        return ranking_pb2_grpc.RankingServiceStub(ch).Rank(
            ranking_pb2.RankRequest(user_id="U", user_vector=[0.1] * 16, candidate_ids=["N1", "N2", "N3"]),
            timeout=timeout,
        )


Gated = tuple[NewsrecServer, int, threading.Event, FakeModel]


def test_health_not_serving_until_loaded(gated: Gated) -> None:
    server, port, gate, _ = gated
    assert _health(port) == health_pb2.HealthCheckResponse.NOT_SERVING
    with pytest.raises(grpc.RpcError) as err:
        _rank(port)
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    gate.set()
    assert server.ready.wait(5)
    assert _health(port) == health_pb2.HealthCheckResponse.SERVING
    assert [c.news_id for c in _rank(port).candidates] != []


def test_unexpected_error_is_internal_without_traceback() -> None:
    server, port = ranker.create_server(CFG, ranker.RankerDeps(_Boom()))
    try:
        assert server.ready.wait(5)
        with pytest.raises(grpc.RpcError) as err:
            _rank(port)
        assert err.value.code() == grpc.StatusCode.INTERNAL
        details = err.value.details() or ""
        assert "secret" not in details and "Traceback" not in details and "reference" in details
    finally:
        server.stop(0).wait()


def test_stop_drains_in_flight_call(gated: tuple[NewsrecServer, int, threading.Event, FakeModel]) -> None:
    server, port, gate, model = gated
    gate.set()
    assert server.ready.wait(5)
    model.rank_delay = 0.5
    result: dict[str, object] = {}

    def call() -> None:
        try:
            result["resp"] = _rank(port)
        except grpc.RpcError as exc:
            result["err"] = exc

    t = threading.Thread(target=call)
    t.start()
    time.sleep(0.15)  # the call is inside rank() now
    stopped = server.stop(grace=3)
    assert _refused(port), "new calls must be refused while draining"
    t.join(5)
    assert "resp" in result, result
    assert stopped.wait(5)


def _refused(port: int) -> bool:
    try:
        _rank(port, timeout=0.5)
    except grpc.RpcError:
        return True
    return False


def test_metrics_endpoint_has_histogram_with_variant(
    gated: tuple[NewsrecServer, int, threading.Event, FakeModel],
) -> None:
    server, port, gate, _ = gated
    gate.set()
    assert server.ready.wait(5)
    _rank(port)
    url = f"http://127.0.0.1:{server.metrics_port}/metrics"
    body = urllib.request.urlopen(url, timeout=5).read().decode()
    assert 'newsrec_ranker_request_seconds_bucket{code="OK",le="0.005",method="Rank",variant="a"}' in body


def test_loaded_objects_are_frozen_out_of_the_gc(gated: Gated) -> None:
    """What the loader built must not be rescanned by every full collection."""
    import gc

    server, _, gate, _ = gated
    gc.unfreeze()
    assert gc.get_freeze_count() == 0
    gate.set()
    assert server.ready.wait(5)
    assert gc.get_freeze_count() > 0
    gc.unfreeze()  # leave the test process as it was


def test_port_in_use_is_an_oserror_naming_the_address() -> None:
    """grpcio >= 1.85 raises RuntimeError from add_insecure_port; serve expects an OSError."""
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        cfg = CFG.model_copy(update={"grpc_port": port, "metrics_port": None})
        with pytest.raises(OSError, match=rf"127\.0\.0\.1:{port}"):
            ranker.create_server(cfg, ranker.RankerDeps(FakeModel()))
