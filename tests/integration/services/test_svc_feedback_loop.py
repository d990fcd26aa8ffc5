"""The feedback loop end to end (issue 19): a really trained tiny model served by the full
stack over loopback gRPC (Milvus Lite, a private redis-server), Recommend -> LogFeedback
with clicks -> entries in the Redis Stream -> `newsrec data from-events` (the CLI, in a
subprocess) -> a MIND directory that `newsrec data validate` accepts, that `newsrec train`
trains on, and that `pipeline run` (kfp.local) trains on."""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
import redis
from svc_helpers import NEWSREC, REPO, start_redis

from newsrec.data import load_dataset, read_behaviors
from services.config import ServeConfig
from services.generated.newsrec.v1 import recommend_pb2, recommend_pb2_grpc
from services.loading import load_variant
from services.stack import start_stack

ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "OMP_NUM_THREADS": "1"}
USERS = 48


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*NEWSREC, *args], env=ENV, cwd=REPO, capture_output=True, text=True, timeout=600)


def _serve_and_click(trained_run: Path, tmp: Path, redis_url: str) -> dict[str, Any]:
    """Serve, ask for USERS lists, log what was shown and clicked; returns the counts sent."""
    news = [trained_run / "data/train/news.tsv", trained_run / "data/dev/news.tsv"]
    cfg = ServeConfig.model_validate(
        {
            "serving_dir": str(trained_run / "serving"),
            "model_name": "fbloop",
            "milvus_uri": str(tmp / "milvus.db"),
            "news_files": [str(p) for p in news],
            "grpc_port": 0,
            "metrics_port": None,
            "gateway": {
                "timeouts": {"encode_user": 5, "retrieve": 5, "rank": 5},
                "feedback": {"redis_url": redis_url},
            },
        }
    )
    deps = load_variant(cfg, with_provider=False)
    stack = start_stack(cfg, {"a": deps})
    sent = {"events": 0, "impressions": 0, "clicks": 0, "replays": 0}
    try:
        stack.wait_ready(120)
        impressions, _ = read_behaviors(trained_run / "data/dev/behaviors.tsv")
        users = list({imp.user_id: imp.history for imp in impressions if imp.history}.items())[:USERS]
        with grpc.insecure_channel(f"127.0.0.1:{stack.ports['gateway']}") as channel:
            stub = recommend_pb2_grpc.RecommendServiceStub(channel)
            for n, (user, history) in enumerate(users):
                _one_user(stub, n, user, history, sent)
        registry = stack.registry
        sent["metric_impressions"] = registry.get_sample_value(
            "newsrec_gateway_impressions_total", {"variant": "a"}
        )
        sent["metric_clicks"] = registry.get_sample_value("newsrec_gateway_clicks_total", {"variant": "a"})
    finally:
        stack.stop(0)
    sent["news"] = news
    return sent


def _one_user(
    stub: recommend_pb2_grpc.RecommendServiceStub, n: int, user: str, history: list[str], sent: dict[str, Any]
) -> None:
    """One list: an impression event with a click, for every third user a later click-only
    event, and for every fifth a retry of the impression event (stored once)."""
    got = stub.Recommend(recommend_pb2.RecommendRequest(user_id=user, history_ids=history, k=10), timeout=10)
    assert got.request_id and not got.degraded, got.degraded_reasons
    ids = [item.news_id for item in got.items]
    impression = recommend_pb2.LogFeedbackRequest(
        event_id=uuid.uuid4().hex,
        request_id=got.request_id,
        user_id=user,
        shown_ids=ids,
        clicked_ids=[ids[n % 10]],
    )
    assert not stub.LogFeedback(impression, timeout=5).duplicate
    sent["events"] += 1
    sent["impressions"] += len(ids)
    sent["clicks"] += 1
    if n % 3 == 0:
        later = recommend_pb2.LogFeedbackRequest(
            event_id=uuid.uuid4().hex,
            request_id=got.request_id,
            user_id=user,
            clicked_ids=[ids[(n + 1) % 10]],
        )
        assert not stub.LogFeedback(later, timeout=5).duplicate
        sent["events"] += 1
        sent["clicks"] += 1
    if n % 5 == 0:
        assert stub.LogFeedback(impression, timeout=5).duplicate
        sent["replays"] += 1


@pytest.fixture(scope="module")
def exported(trained_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("feedback_loop")
    proc = start_redis()
    try:
        sent = _serve_and_click(trained_run, tmp, proc.url)
        stream_len = redis.Redis.from_url(proc.url).xlen("newsrec:feedback")
        out = tmp / "mind"
        news_args = [a for p in sent["news"] for a in ("--news", str(p))]
        run = _cli("data", "from-events", "--redis-url", proc.url, "--out", str(out), *news_args, "--json")
        assert run.returncode == 0, run.stderr
        summary = json.loads(run.stdout)
        # a second export through a consumer group acknowledges everything it read
        group = _cli(
            *("data", "from-events", "--redis-url", proc.url, "--out", str(tmp / "mind-group"), *news_args),
            *("--group", "export", "--json"),
        )
        assert group.returncode == 0, group.stderr
        partial = tmp / "train_news_only.tsv"  # the dev articles are missing from this catalogue
        partial.write_text((trained_run / "data/train/news.tsv").read_text())
        base = ("data", "from-events", "--redis-url", proc.url, "--news", str(partial))
        strict = _cli(*base, "--out", str(tmp / "mind-strict"))
        skipped = _cli(*base, "--out", str(tmp / "mind-skipped"), "--skip-unknown", "--json")
        yield {"sent": sent, "stream_len": stream_len, "out": out, "summary": summary, "tmp": tmp,
               "group": json.loads(group.stdout), "strict": strict, "skipped": skipped}  # fmt: skip
    finally:
        proc.kill()


def test_feedback_reaches_the_stream_and_becomes_mind(exported: dict[str, Any]) -> None:
    sent, summary = exported["sent"], exported["summary"]
    assert exported["stream_len"] == sent["events"]  # retries were not written again
    assert sent["metric_impressions"] == sent["impressions"] and sent["metric_clicks"] == sent["clicks"]
    assert summary["join"]["impressions"] == USERS and summary["join"]["clicks"] == sent["clicks"]
    assert summary["join"]["duplicate_events"] == 0
    assert summary["splits"] == {"train": USERS - USERS // 5, "dev": USERS // 5}
    assert exported["group"]["acknowledged"] == sent["events"]
    dataset = load_dataset(exported["out"])
    rows = dataset["train"].impressions + dataset["dev"].impressions
    assert all(len(r.candidates) == 10 and sum(r.labels) in (1, 2) for r in rows)
    assert sum(sum(r.labels) for r in rows) == sent["clicks"]
    assert all(r.history for r in rows)  # the Recommend request's history (tail), as MIND's history


def test_validate_accepts_and_train_trains(exported: dict[str, Any], trained_run: Path) -> None:
    out = exported["out"]
    valid = _cli("data", "validate", str(out))
    assert valid.returncode == 0, valid.stdout + valid.stderr
    run_dir = exported["tmp"] / "run"
    train = _cli(
        *("train", "--data", str(out), "--out", str(run_dir), "--embeddings", str(trained_run / "emb")),
        *("--epochs", "1", "--output-dim", "32", "--threads", "1", "--no-ranker"),
    )
    assert train.returncode == 0, train.stdout[-2000:] + train.stderr[-2000:]
    assert (run_dir / "serving" / "config.json").is_file()


def test_unknown_ids_fail_with_one_line_or_are_skipped(exported: dict[str, Any]) -> None:
    """A catalogue without the dev news cannot resolve every served id."""
    strict, skipped = exported["strict"], exported["skipped"]
    assert strict.returncode == 1 and strict.stdout == ""
    assert len(strict.stderr.strip().splitlines()) == 1, strict.stderr
    assert "not in the catalogue" in strict.stderr and "--skip-unknown" in strict.stderr
    assert not (exported["tmp"] / "mind-strict").exists()  # nothing written
    assert skipped.returncode == 0, skipped.stderr
    assert json.loads(skipped.stdout)["unknown_ids_skipped"] > 0


@pytest.mark.slow
def test_pipeline_run_trains_on_the_exported_data(exported: dict[str, Any]) -> None:
    from pipelines.cli import _params, data_fingerprint, run_local

    out = exported["tmp"] / "pipeline"
    data = exported["out"]
    params = _params(
        data_dir=str(data),
        data_fingerprint=data_fingerprint(data),
        milvus_uri=str(out / "milvus.db"),
        registry_root=str(out / "registry"),
        model_name="fbloop",
        epochs=1,
        output_dim=32,
        index_type="FLAT",
    )
    summary = run_local(params, out)
    assert summary["version"] and 0.0 <= summary["metrics"]["two_tower_auc"] <= 1.0
