"""One process per service with a pinned variant: the chart's shape, run for real."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from svc_drain import check_drain, drain_probe
from svc_helpers import RedisProc, start_redis
from svc_split import PINNED, SplitStack, publish_pinned, start_split

from newsrec.data import read_behaviors
from services.generated.newsrec.v1 import recommend_pb2, recommend_pb2_grpc

SPLIT_DRAIN_S = 1.5


def redis_command(redis: RedisProc, *args: str) -> bytes:
    """One RESP command over a raw socket (no redis-cli needed)."""
    payload = f"*{len(args)}\r\n" + "".join(f"${len(a)}\r\n{a}\r\n" for a in args)
    with socket.create_connection(("127.0.0.1", redis.port), timeout=5) as s:
        s.sendall(payload.encode())
        return s.recv(1024)


def dev_users(run: Path, n: int) -> list[tuple[str, list[str]]]:
    imps, _ = read_behaviors(run / "data/dev/behaviors.tsv")
    users: dict[str, list[str]] = {}
    for imp in imps:
        if len(imp.history) >= 2:
            users.setdefault(imp.user_id, imp.history)
    return list(users.items())[:n]


@pytest.fixture(scope="module")
def split(
    trained_run: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[SplitStack, RedisProc]]:
    root = tmp_path_factory.mktemp("split")
    registry = publish_pinned(trained_run, root)
    redis = start_redis()
    extra = {"drain_seconds": SPLIT_DRAIN_S, "grace_seconds": 5}
    stack = start_split(registry, redis.url, root / "milvus.db", root, extra=extra)
    try:
        stack.wait_serving()
        yield stack, redis
    finally:
        stack.stop()
        redis.kill()


def test_split_mode_pinned_variant_is_personalised_after_a_cache_flush(
    split: tuple[SplitStack, RedisProc], trained_run: Path
) -> None:
    """Issue 15 defect 1: the encoder and ranker named their model by the artifact's name,
    the gateway by the registry version, so every cache miss was a fallback."""
    stack, redis = split
    users = dev_users(trained_run, 20)
    with grpc.insecure_channel(f"127.0.0.1:{stack.ports['gateway']}") as ch:
        stub = recommend_pb2_grpc.RecommendServiceStub(ch)

        def ask(user: str, history: list[str]) -> recommend_pb2.RecommendResponse:
            req = recommend_pb2.RecommendRequest(user_id=user, history_ids=history, k=3)
            return stub.Recommend(req, timeout=30)

        for user, history in users[:3]:  # warm every hop once
            ask(user, history)
        assert redis_command(redis, "FLUSHALL").startswith(b"+OK")
        answers = [ask(user, history) for user, history in users]
        assert redis_command(redis, "DBSIZE") != b":0\r\n"  # the encoder wrote the vectors again
        again = [ask(user, history) for user, history in users]  # now cache hits via the look-aside
    for resp in answers + again:
        assert not resp.degraded, (list(resp.degraded_reasons), stack.log("gateway")[-2000:])
        assert resp.model_version == PINNED and len(resp.items) == 3
    assert not any(r.cache_hit for r in answers) and all(r.cache_hit for r in again)


def test_split_gateway_sigterm_drains_32_in_flight_calls(
    split: tuple[SplitStack, RedisProc], trained_run: Path
) -> None:
    """Last in this module: it stops the gateway process of the shared stack."""
    stack, _redis = split
    report = drain_probe(stack.ports["gateway"], stack.procs["gateway"], dev_users(trained_run, 64))
    assert stack.procs["gateway"].returncode == 0, stack.log("gateway")[-3000:]
    check_drain(report, SPLIT_DRAIN_S)
