"""Bounded work in `newsrec embed-server`: what the issue-15 requests cost now.

1. a 10 MB string and a 2048 x 12 KB request (before: 26.9 s and 393 s of model work)
   are refused before any model work: how long the refusal takes;
2. a 1-text request sent while a big one runs: its latency with the fair scheduler
   (chunks of 8 texts) and with one model call for the whole request (the old shape,
   `chunk_texts` = max_inputs; before: blocked 22.9 s);
3. the time budget: a request over `request_timeout_s` answers 504 after about the budget.

    python bench/embed_server_bounds.py [--big 192] [--out bench/out/embed_server_bounds.json]
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import threading
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from newsrec.embed.config import ProviderConfig  # noqa: E402
from newsrec.embed.local import LocalProvider  # noqa: E402
from newsrec.embed.server import ServerLimits, start_embedding_server  # noqa: E402

MODEL = "all-MiniLM-L6-v2"


def post(port: int, body: bytes) -> tuple[int, float]:
    """(status, seconds) of one raw POST /v1/embeddings."""
    t0 = time.perf_counter()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=900)
    try:
        conn.putrequest("POST", "/v1/embeddings")
        conn.putheader("Content-Type", "application/json")
        conn.putheader("Content-Length", str(len(body)))
        conn.endheaders()
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            conn.send(body)  # may be refused before the whole body is read
        resp = conn.getresponse()
        resp.read()
        return resp.status, time.perf_counter() - t0
    finally:
        conn.close()


def request(texts: list[str] | str) -> bytes:
    return json.dumps({"model": MODEL, "input": texts, "encoding_format": "base64"}).encode()


def texts(n: int, chars: int = 400) -> list[str]:
    return [f"Title: story {i}\nAbstract: " + ("word " * (chars // 5))[:chars] for i in range(n)]


def small_behind_big(provider: LocalProvider, limits: ServerLimits, big: int) -> dict[str, float]:
    """Latency of a 1-text request sent 0.5 s into a `big`-text request."""
    server, port = start_embedding_server(provider, limits=limits)
    try:
        out: dict[str, float] = {}

        def run_big() -> None:
            out["big_status"], out["big_s"] = post(port, request(texts(big)))

        thread = threading.Thread(target=run_big)
        thread.start()
        time.sleep(0.5)
        out["small_status"], out["small_s"] = post(port, request("one small text"))
        thread.join()
        return out
    finally:
        server.stop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--big", type=int, default=192, help="texts of 400 characters in the big request")
    ap.add_argument("--out", type=Path, default=Path("bench/out/embed_server_bounds.json"))
    args = ap.parse_args()
    import torch

    torch.set_num_threads(1)
    provider = LocalProvider.from_config(ProviderConfig())
    results: dict[str, Any] = {}
    server, port = start_embedding_server(provider)
    try:
        post(port, request("warm up"))
        results["10MB_string"] = post(port, request("x" * 10_000_000))
        results["2048x12KB"] = post(port, request(["y" * 12_000] * 2048))
        results["40k_char_item"] = post(port, request("z" * 40_000))
    finally:
        server.stop()
    fair = ServerLimits()
    whole = ServerLimits(chunk_texts=fair.max_inputs)  # one model call per request, as before
    results["fair_chunks_8"] = small_behind_big(provider, fair, args.big)
    results["one_call_per_request"] = small_behind_big(provider, whole, args.big)
    server, port = start_embedding_server(provider, limits=ServerLimits(request_timeout_s=5.0))
    try:
        results["budget_5s_2048_texts"] = post(port, request(texts(2048, 400)))
    finally:
        server.stop()
    for name, value in results.items():
        print(f"{name:24s} {value}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
