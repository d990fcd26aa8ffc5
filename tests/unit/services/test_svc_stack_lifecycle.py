"""Stack lifecycle over real loopback gRPC: drain order on stop, readiness, failed starts."""

from __future__ import annotations

import socket
import threading
import time
from typing import Any

import grpc
import pytest
from svc_fakes import fake_variant

from newsrec.errors import InvalidInput, NewsrecError, Unavailable
from services.config import ServeConfig
from services.generated.newsrec.v1 import recommend_pb2, recommend_pb2_grpc
from services.stack import Stack, VariantDeps, start_stack


def test_stop_drains_the_gateway_before_the_backends(fake_stack: Stack) -> None:
    """A Recommend still in its first stage when stop() is called must reach the later
    stages (retrieval, ranker over loopback) and come back whole, not degraded."""
    model = fake_stack.servers["user-encoder/a"].bindings[0].servicer.deps.model
    entered = threading.Event()
    encode = model.encode_user

    def slow_encode(history: Any) -> Any:
        entered.set()
        time.sleep(0.5)  # stop() is called during this; the backends must still be up after
        return encode(history)

    model.encode_user = slow_encode
    channel = grpc.insecure_channel(f"127.0.0.1:{fake_stack.ports['gateway']}")
    req = recommend_pb2.RecommendRequest(user_id="U-drain", history_ids=["N3"], k=5, forced_variant="a")
    fut = recommend_pb2_grpc.RecommendServiceStub(channel).Recommend.future(req, timeout=10)
    assert entered.wait(5)
    t0 = time.monotonic()
    fake_stack.stop(grace=5)
    resp = fut.result(timeout=1)
    assert not resp.degraded, list(resp.degraded_reasons)
    assert len(resp.items) == 5 and [s.stage for s in resp.stage_latencies][-2:] == ["rank", "total"]
    assert time.monotonic() - t0 < 4, "stop waited for the grace period instead of the drained calls"
    channel.close()


def test_wait_ready_fails_fast_with_the_load_error() -> None:
    """A loader that fails must not leave `serve --all` waiting out the whole timeout."""

    def broken() -> Any:
        raise InvalidInput("registry: no model named 'nope'")

    cfg = ServeConfig.model_validate({"grpc_port": 0, "metrics_port": None, "host": "127.0.0.1"})
    stack = start_stack(cfg, {"a": broken})
    try:
        t0 = time.monotonic()
        with pytest.raises(NewsrecError, match="no model named 'nope'") as err:
            stack.wait_ready(30)
        assert time.monotonic() - t0 < 5
        assert "failed to load" in str(err.value)
    finally:
        stack.stop(0)


def test_start_stack_with_busy_gateway_port_stops_what_it_started(monkeypatch: pytest.MonkeyPatch) -> None:
    from services import ranker, retrieval, user_encoder

    started: list[int] = []
    for module in (user_encoder, retrieval, ranker):

        def recording(*args: Any, _create: Any = module.create_server, **kwargs: Any) -> Any:
            server, port = _create(*args, **kwargs)
            started.append(port)
            return server, port

        monkeypatch.setattr(module, "create_server", recording)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        cfg = ServeConfig.model_validate(
            {"grpc_port": busy.getsockname()[1], "metrics_port": None, "host": "127.0.0.1"}
        )
        with pytest.raises((OSError, RuntimeError)):
            start_stack(cfg, {"a": fake_variant("v1", 0)})
    assert len(started) == 3
    for port in started:  # the backends started before the gateway's bind failed are gone again
        with pytest.raises(ConnectionRefusedError), socket.create_connection(("127.0.0.1", port), 1):
            pass


def test_a_loader_bug_is_logged_once_with_its_traceback(caplog: pytest.LogCaptureFixture) -> None:
    """Four servers share one variant loader (`serve --all`): a bug in it is one traceback
    in the log, not one per server; an expected failure (NewsrecError) none above DEBUG."""
    import logging

    from newsrec.errors import NotFound

    for failure, tracebacks in ((RuntimeError("a bug"), 1), (NotFound("no such version"), 0)):
        caplog.clear()

        def load(_exc: BaseException = failure) -> VariantDeps:
            raise _exc

        cfg = ServeConfig.model_validate({"grpc_port": 0, "metrics_port": None, "host": "127.0.0.1"})
        with caplog.at_level(logging.INFO, logger="services"):
            stack = start_stack(cfg, {"a": load})
            try:
                with pytest.raises(Unavailable, match=str(failure)):
                    stack.wait_ready(10)
                time.sleep(0.2)  # the other servers' loaders have failed too
            finally:
                stack.stop(0)
        logged = [r for r in caplog.records if r.exc_info and r.levelno >= logging.INFO]
        assert len(logged) == tracebacks, [r.getMessage() for r in logged]
