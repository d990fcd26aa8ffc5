"""The retrieval service and the CLI against a real Milvus server: the alias flipped while
Retrieve is being served, the server killed and restarted under the mirror, and
`newsrec serve --milvus-uri http://...` as a person runs it."""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from milvus_proc import MilvusServerProc
from svc_helpers import NEWSREC, REPO, free_port
from svc_split import _serving as health_serving

from newsrec.index import NewsRecord
from newsrec.index.memory import MirroredIndex
from newsrec.index.milvus import MilvusIndex
from services.config import ServeConfig
from services.generated.newsrec.v1 import retrieval_pb2, retrieval_pb2_grpc
from services.loading import load_variant
from services.stack import Stack, VariantDeps, start_stack

pytestmark = pytest.mark.slow
REFRESH_S = 0.2


def _config(run: Path, uri: str, model: str, mirror: bool) -> ServeConfig:
    news = [run / "data/train/news.tsv", run / "data/dev/news.tsv"]
    return ServeConfig.model_validate(
        {
            "serving_dir": str(run / "serving"),
            "model_name": model,
            "milvus_uri": uri,
            "index_mirror": False,  # wrapped below with a short refresh interval
            "milvus_timeout_seconds": 1.0 if mirror else 5.0,
            "news_files": [str(p) for p in news],
            "grpc_port": 0,
            "metrics_port": None,
        }
    )


@pytest.fixture
def serving(
    trained_run: Path, server: MilvusServerProc, request: pytest.FixtureRequest
) -> Iterator[tuple[Stack, VariantDeps]]:
    mirror = bool(getattr(request, "param", False))
    cfg = _config(trained_run, server.uri, f"m{uuid.uuid4().hex[:6]}", mirror)
    deps = load_variant(cfg, with_provider=False)  # builds the collection on the server
    if mirror:
        assert isinstance(deps.index, MilvusIndex)
        deps = dataclasses.replace(deps, index=MirroredIndex(deps.index, refresh_s=REFRESH_S))
    stack = start_stack(cfg, {"a": deps})
    try:
        stack.wait_ready(120)
        yield stack, deps
    finally:
        stack.stop(0)


def _retrieve(stack: Stack, vector: list[float], k: int = 10) -> retrieval_pb2.RetrieveResponse:
    with grpc.insecure_channel(f"127.0.0.1:{stack.ports['retrieval/a']}") as ch:
        stub = retrieval_pb2_grpc.RetrievalServiceStub(ch)
        return stub.Retrieve(retrieval_pb2.RetrieveRequest(vector=vector, k=k), timeout=10)


def _records(deps: VariantDeps, version: str, keep: slice) -> list[NewsRecord]:
    vecs, ids = deps.model.news_vectors(), deps.model.news_ids()
    return [NewsRecord(n, vecs[i], "news", "s", 1, version) for i, n in enumerate(ids)][keep]


@pytest.mark.timeout(600)
def test_alias_flip_while_retrieval_serves(
    serving: tuple[Stack, VariantDeps], server: MilvusServerProc
) -> None:
    stack, deps = serving
    query = [float(x) for x in deps.model.news_vectors()[:5].mean(axis=0)]
    before = set(_retrieve(stack, query).news_ids)
    v2 = _records(deps, "v2", slice(None, None, 2))  # every other article: answers tell versions apart
    v2_ids = {r.news_id for r in v2}
    answers: list[set[str]] = []
    errors: list[BaseException] = []
    stop = threading.Event()

    def hammer() -> None:
        while not stop.is_set():
            try:
                answers.append(set(_retrieve(stack, query).news_ids))
            except BaseException as exc:
                errors.append(exc)

    t = threading.Thread(target=hammer)
    t.start()
    try:
        # the pipeline's index step, from another process' client: a native alter_alias
        MilvusIndex.from_uri(server.uri, timeout_s=10.0).build_version(deps.alias, "v2", v2)
        deadline = time.monotonic() + 15
        while not (answers and answers[-1] <= v2_ids) and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        stop.set()
        t.join()
    assert not errors, errors[:3]  # not one failed Retrieve across the flip
    assert not before <= v2_ids and answers[-1] <= v2_ids, "answers never switched to v2"
    assert all(a <= v2_ids or a == before for a in answers)  # one version or the other, never mixed


@pytest.mark.timeout(600)
@pytest.mark.parametrize("serving", [True], indirect=True, ids=["mirror"])
def test_server_down_mirror_answers_index_stale_then_recovers(
    serving: tuple[Stack, VariantDeps], server: MilvusServerProc
) -> None:
    stack, deps = serving
    query = [float(x) for x in deps.model.news_vectors()[3]]
    healthy = _retrieve(stack, query)
    assert not healthy.degraded_reasons

    def sample(name: str) -> float | None:
        return stack.registry.get_sample_value(name, {"variant": "a"})

    assert sample("newsrec_retrieval_index_source_up") == 1.0
    server.stop()
    deadline = time.monotonic() + 60
    while not (resp := _retrieve(stack, query)).degraded_reasons:  # every call answers
        assert time.monotonic() < deadline, "index_stale never reported"
        time.sleep(0.1)
    assert list(resp.degraded_reasons) == ["index_stale"] and resp.news_ids == healthy.news_ids
    assert sample("newsrec_retrieval_index_source_up") == 0.0
    assert (sample("newsrec_retrieval_index_stale_seconds") or 0) > 0

    server.start()  # the same service process, never restarted
    deadline = time.monotonic() + 180
    while (resp := _retrieve(stack, query)).degraded_reasons:
        assert time.monotonic() < deadline, "retrieval never recovered after the server came back"
        time.sleep(0.3)
    assert resp.news_ids == healthy.news_ids
    assert sample("newsrec_retrieval_index_source_up") == 1.0
    assert sample("newsrec_retrieval_index_stale_seconds") == 0.0


@pytest.mark.timeout(600)
def test_serve_cli_against_the_server(trained_run: Path, server: MilvusServerProc) -> None:
    # Right after a restart (an earlier test) the server's first Strong reads can take longer
    # than serve's default 2 s Milvus timeout on this loaded machine, and serve then exits
    # (as a pod would, to be restarted). Wait until a bookkeeping read answers in time.
    warm = MilvusIndex.from_uri(server.uri, timeout_s=2.0)
    deadline = time.monotonic() + 120
    while True:
        try:
            warm._meta_get("warm-up")
            break
        except Exception:
            assert time.monotonic() < deadline, "the server never answered a read within 2 s"
            time.sleep(1)
    port = free_port()
    news = [
        "--news",
        str(trained_run / "data/train/news.tsv"),
        "--news",
        str(trained_run / "data/dev/news.tsv"),
    ]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        [*NEWSREC, "serve", "--all", "--serving", str(trained_run / "serving"), *news, "--model", "mcli"]
        + ["--milvus-uri", server.uri, "--port", str(port), "--metrics-port", str(free_port())],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 180
        # gRPC health first, in this process: every `recommend` below is a process start
        while not health_serving(port):
            assert proc.poll() is None, proc.communicate()[1][-3000:]
            assert time.monotonic() < deadline, "serve never reported SERVING"
            time.sleep(0.1)
        out, tries = "", 0
        while "Recommendations for" not in out:
            assert proc.poll() is None, proc.communicate()[1][-3000:]
            assert time.monotonic() < deadline, out
            if tries:
                time.sleep(1)
            tries += 1
            r = subprocess.run(
                [
                    *NEWSREC,
                    "recommend",
                    "--user",
                    "U1",
                    "--history",
                    "",
                    "--k",
                    "5",
                    "--target",
                    f"127.0.0.1:{port}",
                ],
                cwd=REPO,
                env={**env, "COLUMNS": "200"},
                capture_output=True,
                text=True,
                timeout=60,
            )
            out = r.stdout
        assert "degraded no" in out, out
        assert MilvusIndex.from_uri(server.uri).client.describe_alias("news_mcli")["collection_name"]
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)
    assert proc.returncode == 0
