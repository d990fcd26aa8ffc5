"""The CLI in a subprocess: kill -9 mid-run and resume; the API key never leaks."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from embed_helpers import hand_made_news, read_json, write_news
from faulty_server import FaultPlan, start_faulty_server
from faulty_server import FaultyEmbeddingServer as EmbeddingHTTPServer

from newsrec.embed.cache import EmbeddingCache
from newsrec.embed.config import PrecomputeConfig, ProviderConfig
from newsrec.embed.precompute import precompute
from newsrec.embed.store import load_embeddings

NEWSREC = str(Path(sys.executable).with_name("newsrec"))


def _cli(port: int, news: Path, out: Path, *extra: str) -> list[str]:
    return [
        NEWSREC, "embed", "--news", str(news), "--provider", "openai",
        "--base-url", f"http://127.0.0.1:{port}/v1", "--dimensions", "384",
        "--out", str(out), "--cache-dir", str(out.parent / "cache"), *extra,
    ]  # fmt: skip


def _env(key: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "OPENAI_API_KEY"}
    env["HF_HUB_OFFLINE"] = "1"
    if key:
        env["OPENAI_API_KEY"] = key
    return env


def test_kill9_then_resume_sends_no_text_twice(
    tmp_path: Path, embedding_server: tuple[EmbeddingHTTPServer, int], api_key: str
) -> None:
    server, port = embedding_server
    rows = hand_made_news(64)
    news = write_news(tmp_path / "news.tsv", rows)
    out = tmp_path / "out"
    # After 4 served batches the server holds the 5th request: we kill the client while
    # nothing is in flight that the server has already embedded.
    server.state.set_plan(FaultPlan(block_after=4))
    cmd = _cli(port, news, out, "--batch-size", "8", "--concurrency", "1", "--quiet")
    proc = subprocess.Popen(cmd, env=_env(api_key), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while server.state.blocked < 1:
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "client never reached the 5th batch"
            time.sleep(0.05)
        with EmbeddingCache(tmp_path / "cache") as cache:
            assert len(cache) == 32  # 4 batches paid for and committed
    finally:
        proc.kill()  # SIGKILL: no cleanup, no atexit
        proc.communicate()
    assert proc.returncode == -9
    assert not (out / "vectors.npy").exists()
    server.state.set_plan(FaultPlan())
    server.state.release()

    done = subprocess.run(cmd, env=_env(api_key), capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr
    meta = read_json(out / "metadata.json")
    assert meta["cache_hits"] == 32 and meta["embedded_texts"] == 32 and meta["failures"] == 0
    table = load_embeddings(out)
    assert sorted(table.ids) == sorted(r[0] for r in rows) and len(set(table.ids)) == 64
    assert np.all(np.abs(np.linalg.norm(table.vectors, axis=1) - 1) < 1e-4)
    # Across both runs the server embedded every text exactly once.
    assert len(server.state.embedded) == 64 and set(server.state.embedded.values()) == {1}


def test_api_key_never_leaks(
    tmp_path: Path, local_provider: object, caplog: pytest.LogCaptureFixture
) -> None:
    key = "sk-proj-LEAKCHECK-" + "a1b2c3d4" * 4
    wrong = "sk-proj-WRONGKEY-" + "e5f6a7b8" * 4
    server, port = start_faulty_server(local_provider, api_key=key, model_name="text-embedding-3-small")  # type: ignore[arg-type]
    try:
        rows = hand_made_news(12)
        rows[3] = ("BAD", "news", "poison", "rejected")
        news = write_news(tmp_path / "news.tsv", rows)
        outputs: list[str] = []
        # 1) a run with a 429 and a rejected batch (error paths), key from the environment
        server.state.set_plan(FaultPlan(rate_limit=1, fail_substring="poison"))
        r1 = subprocess.run(
            _cli(port, news, tmp_path / "o1", "--batch-size", "4"),
            env=_env(key),
            capture_output=True,
            text=True,
        )
        assert r1.returncode == 1 and "BAD" in r1.stderr
        # 2) a wrong key from a file, with a server that quotes the rejected key back
        server.state.set_plan(FaultPlan(echo_key_on_401=True))
        keyfile = tmp_path / "wrong.key"
        keyfile.write_text(wrong)
        r2 = subprocess.run(
            _cli(port, news, tmp_path / "o2", "--api-key-file", str(keyfile), "--max-retries", "0"),
            env=_env(None),
            capture_output=True,
            text=True,
        )
        assert r2.returncode == 1 and "HTTP 401" in r2.stderr
        # 3) in process with every logger at DEBUG (ours, openai's, httpx's)
        server.state.set_plan(FaultPlan(rate_limit=1))
        caplog.set_level(logging.DEBUG)
        os.environ["OPENAI_API_KEY"] = key
        try:
            cfg = PrecomputeConfig(
                provider=ProviderConfig(
                    provider="openai",
                    base_url=f"http://127.0.0.1:{port}/v1",
                    dimensions=384,
                    backoff_base=0.01,
                ),
                cache_dir=tmp_path / "cache3",
                progress=False,
            )
            report = precompute([news], cfg, tmp_path / "o3")
        finally:
            del os.environ["OPENAI_API_KEY"]
        assert report.ok and report.rate_limited == 1
        outputs += [
            r1.stdout,
            r1.stderr,
            r2.stdout,
            r2.stderr,
            caplog.text,
            repr(report),
            str(report.metadata()),
        ]
        blobs = [p.read_bytes() for p in tmp_path.rglob("*") if p.is_file() and p.name != "wrong.key"]
        assert len(blobs) >= 6  # metadata, ids, vectors, failures.json, cache files
        for secret in (key, wrong):
            assert all(secret not in text for text in outputs)
            assert all(secret.encode() not in blob for blob in blobs)
            assert all(secret[:12] not in text for text in outputs)
    finally:
        server.stop()
