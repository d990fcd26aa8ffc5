"""An OpenAI-compatible embedding server over the local model (stdlib http.server).

`POST /v1/embeddings`, `GET /v1/models`, `GET /healthz`. Every request is bounded
(`ServerLimits`: body bytes, JSON depth, items, characters per item and per request, a
time budget) and checked like OpenAI checks it (unknown fields, strict types, the model
name). The work is cut into chunks of a few texts and the workers take chunks from the
queued requests in turn, so one 2048-text request delays a 1-text request by one chunk,
not by its whole run. A full queue answers 503 with `Retry-After`.

The product server injects no faults: tests subclass `EmbeddingHTTPServer` and override
`intercept` / `served` / `extra_post` (tests/integration/embed/faulty_server.py).
"""

from __future__ import annotations

import base64
import contextlib
import hmac
import json
import logging
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np

from newsrec.embed.providers import EmbeddingProvider, EmbedResult

log = logging.getLogger(__name__)
KNOWN_FIELDS = ("input", "model", "dimensions", "encoding_format", "user")


@dataclass(frozen=True)
class ServerLimits:
    """Bounds on the work one request may cause (defaults follow OpenAI's where it has one)."""

    max_body_bytes: int = 8 * 1024 * 1024
    max_json_depth: int = 8  # a valid request nests 2 deep ({"input": [...]})
    max_inputs: int = 2048
    max_input_chars: int = 32_768  # ~8k tokens, OpenAI's per-input limit
    max_request_chars: int = 1_000_000  # ~300k tokens, OpenAI's per-request limit
    request_timeout_s: float = 60.0  # queueing + embedding; then 504
    chunk_texts: int = 8  # texts per model call; the unit of fairness between requests
    workers: int = 1  # model calls in parallel (the local model runs one at a time anyway)
    max_queued: int = 32  # requests queued or running; more get 503 + Retry-After
    socket_timeout_s: float = 30.0  # a client that stops sending mid-request is dropped

    def __post_init__(self) -> None:
        for name in ("max_body_bytes", "max_json_depth", "max_inputs", "max_input_chars"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1")
        if self.max_request_chars < 1 or self.chunk_texts < 1 or self.workers < 1 or self.max_queued < 1:
            raise ValueError("max_request_chars, chunk_texts, workers and max_queued must be >= 1")
        if self.request_timeout_s <= 0 or self.socket_timeout_s <= 0:
            raise ValueError("request_timeout_s and socket_timeout_s must be > 0")


class RequestError(Exception):
    """An answer other than 200: status, OpenAI-style error code and param, extra headers."""

    def __init__(
        self,
        status: int,
        message: str,
        code: str | None = None,
        param: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.param, self.headers = status, code, param, headers or {}


def _bad(message: str, param: str | None = None) -> RequestError:
    return RequestError(400, message, "invalid_value" if param else "invalid_request", param)


@dataclass
class _Job:
    """One request's texts, embedded chunk by chunk by the scheduler's workers."""

    texts: list[str]
    deadline: float
    chunk: int
    results: dict[int, EmbedResult] = field(default_factory=dict)  # by chunk start
    next_start: int = 0
    running: int = 0
    error: BaseException | None = None
    expired: bool = False
    done: threading.Event = field(default_factory=threading.Event)

    def finished(self) -> bool:
        return self.error is not None or self.expired or self.next_start >= len(self.texts)


class FairScheduler:
    """Round robin over queued requests, one chunk at a time, on a fixed pool of workers."""

    def __init__(self, provider: EmbeddingProvider, limits: ServerLimits) -> None:
        self._provider = provider
        self._limits = limits
        self._cond = threading.Condition()
        self._ready: deque[_Job] = deque()
        self._active = 0
        self._closed = False
        self._threads = [
            threading.Thread(target=self._work, name=f"embed-worker-{i}", daemon=True)
            for i in range(limits.workers)
        ]
        for thread in self._threads:
            thread.start()

    def submit(self, texts: list[str], deadline: float) -> _Job:
        """Queue a job, or raise a 503 when `max_queued` requests are already in."""
        with self._cond:
            if self._active >= self._limits.max_queued:
                raise RequestError(
                    503, "server busy: too many queued requests", "server_busy", headers={"Retry-After": "1"}
                )
            job = _Job(texts, deadline, self._limits.chunk_texts)
            self._active += 1
            self._ready.append(job)
            self._cond.notify()
        return job

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def _next_chunk(self) -> tuple[_Job, int, int] | None:
        with self._cond:
            while not self._ready and not self._closed:
                self._cond.wait()
            if self._closed:
                return None
            job = self._ready.popleft()
            if time.monotonic() >= job.deadline:
                job.expired = True
                self._settle(job)
                return (job, 0, 0)
            start = job.next_start
            stop = _chunk_end(job.texts, start, job.chunk)
            job.next_start, job.running = stop, job.running + 1
            if stop < len(job.texts):
                self._ready.append(job)  # back of the line: other requests go first
            return (job, start, stop)

    def _settle(self, job: _Job) -> None:
        """Under the lock: wake the waiter once no chunk of a finished job is running."""
        if job.finished() and job.running == 0 and not job.done.is_set():
            self._active -= 1
            job.done.set()

    def _work(self) -> None:
        while (item := self._next_chunk()) is not None:
            job, start, stop = item
            if stop == start:
                continue
            try:
                result: EmbedResult | None = self._provider.embed(job.texts[start:stop])
            except Exception as exc:  # noqa: BLE001  reported to the request, not the worker
                result, job.error = None, exc
            with self._cond:
                job.running -= 1
                if result is not None:
                    job.results[start] = result
                if job.error is not None:
                    _drop(self._ready, job)
                self._settle(job)


def _chunk_end(texts: list[str], start: int, most: int) -> int:
    """End of the chunk from `start`: at most `most` texts and about 64k characters."""
    stop, chars = start, 0
    while stop < len(texts) and stop - start < most and (stop == start or chars + len(texts[stop]) <= 65_536):
        chars += len(texts[stop])
        stop += 1
    return stop


def _drop(queue: deque[_Job], job: _Job) -> None:
    with contextlib.suppress(ValueError):
        queue.remove(job)


def _merge(job: _Job) -> EmbedResult:
    """The chunks' results in text order (with workers > 1 chunks may finish out of order)."""
    parts = [job.results[k] for k in sorted(job.results)]
    vectors = np.concatenate([r.vectors for r in parts], axis=0)
    tokens = [t for r in parts for t in r.tokens]
    return EmbedResult(vectors=vectors, tokens=tokens, billed_tokens=sum(r.billed_tokens for r in parts))


class EmbeddingHTTPServer(ThreadingHTTPServer):
    """The server; `intercept`, `served`, `extra_post` and `auth_failure_message` are the
    hooks a test subclass overrides to inject faults (they do nothing here)."""

    daemon_threads = True

    def __init__(
        self,
        address: tuple[str, int],
        provider: EmbeddingProvider,
        *,
        model_name: str | None = None,
        aliases: tuple[str, ...] = (),
        api_key: str | None = None,
        limits: ServerLimits | None = None,
    ) -> None:
        super().__init__(address, _Handler)
        self.provider = provider
        self.model_name = model_name or provider.model
        self.model_names = (self.model_name, *[a for a in aliases if a != self.model_name])
        self.api_key = api_key
        self.limits = limits or ServerLimits()
        self.scheduler = FairScheduler(provider, self.limits)

    def intercept(self, handler: _Handler, texts: list[str]) -> bool:
        """Called before embedding a valid request; True when it has answered instead."""
        return False

    def served(self, texts: list[str]) -> None:
        """Called after a successful embedding of `texts`."""

    def extra_post(self, handler: _Handler, path: str, body: Any) -> bool:
        """Called for a POST to a path this server does not know; True when it answered."""
        return False

    def auth_failure_message(self, presented: str) -> str:
        """The 401 message; it never quotes what the client sent."""
        return "invalid or missing API key"

    def stop(self) -> None:
        self.scheduler.close()
        self.shutdown()
        self.server_close()


class _Handler(BaseHTTPRequestHandler):
    server: EmbeddingHTTPServer
    protocol_version = "HTTP/1.1"

    def setup(self) -> None:
        super().setup()
        # a client that stops sending mid-request must not hold a thread for ever
        self.connection.settimeout(self.server.limits.socket_timeout_s)

    def log_message(self, format: str, *args: Any) -> None:
        # Request lines only, at debug level; headers (and so keys) are never logged.
        log.debug("%s %s", self.address_string(), format % args)

    def send_json(self, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        body = json.dumps(payload).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def send_error_json(self, err: RequestError) -> None:
        kind = (
            "rate_limit_error"
            if err.status == 429
            else "invalid_request_error"
            if err.status < 500
            else "server_error"
        )
        error = {"message": str(err), "type": kind, "param": err.param, "code": err.code}
        self.send_json(err.status, {"error": error}, err.headers)

    def _check_key(self) -> None:
        if self.server.api_key is None:
            return
        got = self.headers.get("Authorization", "")
        if not hmac.compare_digest(got.encode(), f"Bearer {self.server.api_key}".encode()):
            self.close_connection = True  # the body is not read
            message = self.server.auth_failure_message(got.removeprefix("Bearer "))
            raise RequestError(401, message, "invalid_api_key")

    def do_GET(self) -> None:
        try:
            if self.path == "/healthz":
                self.send_json(200, {"status": "ok"})
            elif self.path in ("/v1/models", "/models"):
                self._check_key()
                models = [
                    {"id": name, "object": "model", "created": 0, "owned_by": "newsrec"}
                    for name in self.server.model_names
                ]
                self.send_json(200, {"object": "list", "data": models})
            else:
                raise RequestError(404, f"no route {self.path}", "not_found")
        except RequestError as err:
            self.send_error_json(err)

    def do_POST(self) -> None:
        try:
            self._check_key()
            body = _read_json(self, self.server.limits)
            if self.path in ("/v1/embeddings", "/embeddings"):
                self._embeddings(body)
            elif not self.server.extra_post(self, self.path, body):
                raise RequestError(404, f"no route {self.path}", "not_found")
        except RequestError as err:
            self.send_error_json(err)
        except Exception:  # a bug: a JSON 500, never a dropped connection
            log.exception("embedding request failed")
            self.close_connection = True
            self.send_error_json(RequestError(500, "internal error", "server_error"))

    def _embeddings(self, body: Any) -> None:
        srv = self.server
        texts, dims, fmt = parse_request(body, srv.provider.dimension, srv.model_names, srv.limits)
        if srv.intercept(self, texts):
            return
        start = time.monotonic()
        job = srv.scheduler.submit(texts, start + srv.limits.request_timeout_s)
        if not job.done.wait(srv.limits.request_timeout_s + 30.0) or job.expired:
            job.expired = True  # a worker that picks it up later drops it
            raise RequestError(
                504,
                f"request took over {srv.limits.request_timeout_s:g} s (embedded {len(job.results)} "
                f"chunk(s) of {len(texts)} texts); send fewer or shorter texts",
                "timeout",
                headers={"Retry-After": "1"},
            )
        if job.error is not None:
            log.error("embedding failed: %s: %s", type(job.error).__name__, job.error)
            raise RequestError(500, "embedding failed", "server_error")
        result = _merge(job)
        vectors = result.vectors
        if dims is not None and dims < vectors.shape[1]:
            # MiniLM is not Matryoshka-trained: cutting is only here so the `dimensions`
            # code path of clients can be exercised end to end.
            vectors = vectors[:, :dims]
            vectors = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
        srv.served(texts)
        data = [
            {"object": "embedding", "index": i, "embedding": _encode(v, fmt)} for i, v in enumerate(vectors)
        ]
        usage = {"prompt_tokens": result.billed_tokens, "total_tokens": result.billed_tokens}
        self.send_json(200, {"object": "list", "data": data, "model": srv.model_name, "usage": usage})


def _read_json(handler: _Handler, limits: ServerLimits) -> Any:
    """The body as JSON: a Content-Length within the limit, strict JSON, bounded nesting."""
    if handler.headers.get("Transfer-Encoding"):
        handler.close_connection = True
        raise RequestError(411, "chunked bodies are not supported; send Content-Length", "length_required")
    raw_length = handler.headers.get("Content-Length")
    if raw_length is None or not raw_length.strip().isdigit():
        handler.close_connection = True
        raise RequestError(411, "a POST needs a Content-Length header (a number)", "length_required")
    length = int(raw_length)
    if length > limits.max_body_bytes:
        handler.close_connection = True  # the body is not read
        raise RequestError(
            413, f"request body is {length} bytes; at most {limits.max_body_bytes}", "body_too_large"
        )
    raw = handler.rfile.read(length)
    try:
        body = json.loads(raw or b"null", parse_constant=_reject_constant)
    except RecursionError:
        raise _bad(f"request body nests deeper than {limits.max_json_depth} levels") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise _bad(f"request body is not JSON: {exc}") from None
    except ValueError as exc:
        raise _bad(f"request body is not strict JSON: {exc}") from None
    if _depth(body) > limits.max_json_depth:
        raise _bad(f"request body nests deeper than {limits.max_json_depth} levels")
    return body


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _depth(value: Any) -> int:
    """Nesting depth of a parsed JSON value, without recursion."""
    deepest, stack = 0, [(value, 0)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict):
            stack.extend((v, depth + 1) for v in node.values())
        elif isinstance(node, list):
            stack.extend((v, depth + 1) for v in node)
        else:
            deepest = max(deepest, depth)
            continue
        deepest = max(deepest, depth + 1)
    return deepest


def parse_request(
    body: Any, native_dim: int, model_names: tuple[str, ...], limits: ServerLimits
) -> tuple[list[str], int | None, str]:
    """(texts, dimensions, encoding format) of a valid request, else a 400/404 naming the field."""
    if not isinstance(body, dict):
        raise _bad("request body must be a JSON object")
    unknown = sorted(set(body) - set(KNOWN_FIELDS))
    if unknown:
        raise _bad(f"unrecognized request argument(s): {', '.join(unknown)}", unknown[0])
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise _bad("'model' is required (a string)", "model")
    if model not in model_names:
        raise RequestError(
            404,
            f"the model '{model[:200]}' does not exist; this server serves {', '.join(model_names)}",
            "model_not_found",
            "model",
        )
    texts = _texts(body.get("input"), limits)
    dims = body.get("dimensions")
    # bool is an int in Python: `true` must not pass as 1
    if dims is not None and (type(dims) is not int or not 1 <= dims <= native_dim):
        raise _bad(f"'dimensions' must be an integer in 1..{native_dim}", "dimensions")
    fmt = body.get("encoding_format")
    fmt = "float" if fmt is None else fmt
    if fmt not in ("float", "base64"):
        raise _bad("'encoding_format' must be 'float' or 'base64'", "encoding_format")
    if "user" in body and not isinstance(body["user"], str):
        raise _bad("'user' must be a string", "user")
    return texts, dims, fmt


def _texts(raw: Any, limits: ServerLimits) -> list[str]:
    texts = [raw] if isinstance(raw, str) else raw
    if not isinstance(texts, list) or not texts:
        raise _bad("'input' must be a string or a non-empty list of strings", "input")
    if len(texts) > limits.max_inputs:
        raise _bad(f"'input' has {len(texts)} items; at most {limits.max_inputs}", "input")
    total = 0
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise _bad(f"'input[{i}]' must be a string (token arrays unsupported)", "input")
        if not text:
            raise _bad(f"'input[{i}]' is an empty string", "input")
        if len(text) > limits.max_input_chars:
            raise _bad(f"'input[{i}]' has {len(text)} characters; at most {limits.max_input_chars}", "input")
        total += len(text)
    if total > limits.max_request_chars:
        raise _bad(f"'input' has {total} characters in all; at most {limits.max_request_chars}", "input")
    return texts


def _encode(vector: np.ndarray, fmt: str) -> Any:
    if fmt == "base64":
        return base64.b64encode(np.ascontiguousarray(vector, dtype="<f4").tobytes()).decode("ascii")
    return [float(x) for x in vector]


def start_embedding_server(
    provider: EmbeddingProvider,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    api_key: str | None = None,
    model_name: str | None = None,
    aliases: tuple[str, ...] = (),
    limits: ServerLimits | None = None,
    server_class: type[EmbeddingHTTPServer] = EmbeddingHTTPServer,
) -> tuple[EmbeddingHTTPServer, int]:
    """Serve in a daemon thread; returns the server (call `.stop()`) and the bound port."""
    server = server_class(
        (host, port), provider, model_name=model_name, aliases=aliases, api_key=api_key, limits=limits
    )
    thread = threading.Thread(target=server.serve_forever, name="embedding-server", daemon=True)
    thread.start()
    return server, int(server.server_address[1])
