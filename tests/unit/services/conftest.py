"""Fixtures for the services unit tests: a fake-model stack on loopback gRPC."""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import pytest
from svc_fakes import fake_variant

from services.config import ServeConfig
from services.stack import Stack, start_stack


@pytest.fixture
def fake_stack() -> Iterator[Stack]:
    cfg = ServeConfig.model_validate(
        {
            "grpc_port": 0,
            "metrics_port": 0,
            "host": "127.0.0.1",
            "gateway": {"timeouts": {"encode_user": 5, "retrieve": 5, "rank": 5}},
        }
    )
    stack = start_stack(cfg, {"a": fake_variant("v1", 0, 50), "b": fake_variant("v2", 1, 50)})
    stack.wait_ready(30)
    yield stack
    stack.stop(0)


@pytest.fixture
def gateway_channel(fake_stack: Stack) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(f"127.0.0.1:{fake_stack.ports['gateway']}") as channel:
        yield channel
