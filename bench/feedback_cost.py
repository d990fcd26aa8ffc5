"""What the feedback loop costs the gateway (services/feedback.py), against a real redis-server.

- `record`: what Recommend's response path pays to get a request id (ServedRecorder.record:
  one dict insert and a wake-up of the background writer), timed per call while the
  writer stores the records in Redis concurrently (its GIL share included). Calls are
  spaced by `--gap-ms` (1 ms = 1000 RPS on one gateway), as under load.
- `log_feedback`: one LogFeedback event end to end in-process (checks, GET of the served
  record, the Lua dedup + XADD), the handler's latency without gRPC.

Medians and p99 of per-call wall times; only same-run figures mean anything on a shared
machine.

    .venv/bin/python bench/feedback_cost.py [--calls 5000] [--gap-ms 1]
"""

from __future__ import annotations

import argparse
import shutil
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import numpy as np
from prometheus_client import CollectorRegistry

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from services.cache import redis_client  # noqa: E402
from services.config import FeedbackConfig  # noqa: E402
from services.feedback import FeedbackLog, ServedRecorder  # noqa: E402
from services.generated.newsrec.v1 import recommend_pb2  # noqa: E402
from services.metrics import GatewayMetrics  # noqa: E402


def _redis() -> tuple[subprocess.Popen[bytes], str]:
    if shutil.which("redis-server") is None:
        sys.exit("redis-server not installed")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
            return proc, f"redis://127.0.0.1:{port}/0"
        except OSError:
            time.sleep(0.02)
    proc.kill()
    sys.exit("redis-server did not start")


def _stats(ns: list[int]) -> str:
    us = np.asarray(ns) / 1000
    return f"median {np.median(us):.1f} us, p99 {np.percentile(us, 99):.1f} us ({len(us)} calls)"


def _nothing(*_args: object) -> str:
    return ""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=int, default=5000)
    ap.add_argument("--gap-ms", type=float, default=1.0)
    ap.add_argument("--k", type=int, default=10)
    args = ap.parse_args()
    proc, url = _redis()
    try:
        cfg = FeedbackConfig.model_validate({"redis_url": url})
        metrics = GatewayMetrics.of(CollectorRegistry())
        client = redis_client(url, 0.5)
        recorder = ServedRecorder(client, cfg, metrics)
        log = FeedbackLog(client, cfg, recorder, metrics)
        items = [recommend_pb2.RecommendedItem(news_id=f"N{i}", title="t", score=0.5) for i in range(args.k)]
        history = [f"N{1000 + i}" for i in range(100)]
        published = {f"N{i}": int(time.time()) - 3600 * i for i in range(args.k)}
        record_ns, floor_ns, rids = [], [], []
        for i in range(args.calls):  # interleaved: the floor is a call that does nothing
            time.sleep(args.gap_ms / 1000)
            t0 = time.perf_counter_ns()
            rid = recorder.record(f"U{i}", "a", "v1", items, history, published)
            record_ns.append(time.perf_counter_ns() - t0)
            rids.append(rid)
            time.sleep(args.gap_ms / 1000)
            t0 = time.perf_counter_ns()
            _nothing(f"U{i}", "a", "v1", items, history, published)
            floor_ns.append(time.perf_counter_ns() - t0)
        recorder.flush()
        stored = sum(1 for rid in rids[-100:] if client.exists(cfg.served_prefix + rid))
        log_ns = []
        for i, rid in enumerate(rids[: args.calls]):
            event = recommend_pb2.LogFeedbackRequest(
                event_id=uuid.uuid4().hex,
                request_id=rid,
                user_id=f"U{i}",
                shown_ids=[it.news_id for it in items],
                clicked_ids=[items[i % args.k].news_id],
            )
            t0 = time.perf_counter_ns()
            log.append(event, 500)
            log_ns.append(time.perf_counter_ns() - t0)
        print(f"record (Recommend's added cost, gap {args.gap_ms} ms, k={args.k}): {_stats(record_ns)}")
        print(f"floor (an empty call, same schedule): {_stats(floor_ns)}")
        print(f"log_feedback (in-process handler, k={args.k}): {_stats(log_ns)}")
        length = client.xlen(cfg.stream)
        print(f"served records stored: {stored}/100 checked; stream length {length}")
        stream_bytes = int(client.memory_usage(cfg.stream, samples=0) or 0)
        served_bytes = int(client.memory_usage(cfg.served_prefix + rids[-1]) or 0)
        dedup_bytes = int(client.memory_usage(cfg.dedup_prefix + event.event_id) or 0)
        print(
            f"redis memory: {stream_bytes / max(1, length):.0f} B per stream event "
            f"(history {len(history)} ids, kept {cfg.history_limit}), "
            f"{served_bytes} B per served record, {dedup_bytes} B per event-id key"
        )
        recorder.close()
    finally:
        proc.kill()


if __name__ == "__main__":
    main()
