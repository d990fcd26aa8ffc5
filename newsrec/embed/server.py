"""An OpenAI-compatible embedding server over the local model (stdlib http.server).

`POST /v1/embeddings`, `GET /v1/models`, `GET /healthz`, and `POST /admin/faults`
to change the fault plan of a running instance. Faults (429 bursts with
`Retry-After`, 500 bursts, dropped connections, delays, always-failing texts, and a
gate that holds requests) exist so the client's retry and resume paths can be tested
against a real server; a server started without a plan injects nothing.

The server counts, per sha256 of the text, how often it embedded each text: tests
use it to prove that no text is ever paid for twice.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass, fields
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np

from newsrec.embed.providers import EmbeddingProvider
from newsrec.errors import InvalidInput

log = logging.getLogger(__name__)
MAX_BODY = 32 * 1024 * 1024
MAX_INPUTS = 2048
RELEASE_TIMEOUT = 60.0


@dataclass
class FaultPlan:
    """Faults for the next embedding requests, consumed in this order: 429s, then 500s, then drops."""

    rate_limit: int = 0
    retry_after: float | None = 0.05
    server_error: int = 0
    drop: int = 0
    delay: float = 0.0
    fail_substring: str | None = None  # any request with an input containing it fails, every time
    fail_status: int = 400
    block_after: int | None = None  # after this many served requests, hold new ones until release()
    echo_key_on_401: bool = False  # quote the rejected key in the 401 message, as some APIs do

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FaultPlan:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise InvalidInput(f"fault plan: unknown field(s) {unknown}; known: {sorted(known)}")
        return cls(**data)


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class ServerState:
    """Fault plan and counters of one server instance (shared by its handler threads)."""

    def __init__(self, plan: FaultPlan | None = None) -> None:
        self.lock = threading.Lock()
        self.plan = plan or FaultPlan()
        self.embedded: Counter[str] = Counter()
        self.requests = 0
        self.served = 0
        self.faults: Counter[str] = Counter()
        self.blocked = 0
        self._release = threading.Event()

    def set_plan(self, plan: FaultPlan) -> None:
        with self.lock:
            self.plan = plan
            self._release.clear()

    def release(self) -> None:
        """Let held requests go (they are dropped, not served)."""
        self._release.set()

    def wait_release(self) -> None:
        self._release.wait(RELEASE_TIMEOUT)


class EmbeddingHTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(
        self,
        address: tuple[str, int],
        provider: EmbeddingProvider,
        *,
        model_name: str | None = None,
        api_key: str | None = None,
        plan: FaultPlan | None = None,
    ) -> None:
        super().__init__(address, _Handler)
        self.provider = provider
        self.model_name = model_name or provider.model
        self.api_key = api_key
        self.state = ServerState(plan)

    def stop(self) -> None:
        self.state.release()
        self.shutdown()
        self.server_close()


class _Handler(BaseHTTPRequestHandler):
    server: EmbeddingHTTPServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        # Request lines only, at debug level; headers (and so keys) are never logged.
        log.debug("%s %s", self.address_string(), format % args)

    def _send(self, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        body = json.dumps(payload).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def _error(self, status: int, message: str, code: str | None = None, **headers: str) -> None:
        kind = (
            "rate_limit_error"
            if status == 429
            else "invalid_request_error"
            if status < 500
            else "server_error"
        )
        self._send(
            status, {"error": {"message": message, "type": kind, "param": None, "code": code}}, headers
        )

    def _authorised(self) -> bool:
        if self.server.api_key is None:
            return True
        got = self.headers.get("Authorization", "")
        if hmac.compare_digest(got.encode(), f"Bearer {self.server.api_key}".encode()):
            return True
        message = "invalid or missing API key"
        if self.server.state.plan.echo_key_on_401:
            message += f": {got.removeprefix('Bearer ')}"
        self._error(401, message, "invalid_api_key")
        return False

    def _read_json(self) -> Any:
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            raise InvalidInput(f"request body over {MAX_BODY} bytes")
        try:
            return json.loads(self.rfile.read(length) or b"null")
        except json.JSONDecodeError as exc:
            raise InvalidInput(f"request body is not JSON: {exc}") from None

    def do_GET(self) -> None:
        if self.path == "/healthz":
            self._send(200, {"status": "ok"})
        elif self.path in ("/v1/models", "/models"):
            if self._authorised():
                model = {"id": self.server.model_name, "object": "model", "created": 0, "owned_by": "newsrec"}
                self._send(200, {"object": "list", "data": [model]})
        else:
            self._error(404, f"no route {self.path}")

    def do_POST(self) -> None:
        if not self._authorised():
            return
        try:
            body = self._read_json()
            if self.path == "/admin/faults":
                plan = FaultPlan.from_dict(body or {})
                self.server.state.set_plan(plan)
                self._send(200, {"plan": asdict(plan)})
            elif self.path in ("/v1/embeddings", "/embeddings"):
                self._embeddings(body)
            else:
                self._error(404, f"no route {self.path}")
        except InvalidInput as exc:
            self._error(400, str(exc))
        except (TypeError, ValueError) as exc:
            self._error(400, f"bad request: {exc}")

    def _embeddings(self, body: Any) -> None:
        texts, dims, fmt = _parse_request(body, self.server.provider.dimension)
        state = self.server.state
        with state.lock:
            state.requests += 1
            plan = state.plan
            fault = None
            if plan.rate_limit > 0:
                plan.rate_limit, fault = plan.rate_limit - 1, "429"
            elif plan.server_error > 0:
                plan.server_error, fault = plan.server_error - 1, "500"
            elif plan.drop > 0:
                plan.drop, fault = plan.drop - 1, "drop"
            elif plan.fail_substring and any(plan.fail_substring in t for t in texts):
                fault = "fail"
            elif plan.block_after is not None and state.served >= plan.block_after:
                fault, state.blocked = "block", state.blocked + 1
            if fault:
                state.faults[fault] += 1
        if plan.delay:
            time.sleep(plan.delay)
        if fault == "429":
            extra = {"Retry-After": f"{plan.retry_after:g}"} if plan.retry_after is not None else {}
            return self._error(429, "rate limit reached (injected)", "rate_limit_exceeded", **extra)
        if fault == "500":
            return self._error(500, "internal error (injected)")
        if fault == "fail":
            return self._error(plan.fail_status, "input rejected (injected)")
        if fault == "block":
            state.wait_release()
            fault = "drop"
        if fault == "drop":
            self.close_connection = True  # no response at all: the client sees a dropped connection
            return None

        result = self.server.provider.embed(texts)
        vectors = result.vectors
        if dims is not None and dims < vectors.shape[1]:
            # MiniLM is not Matryoshka-trained: cutting is only here so the `dimensions`
            # code path of clients can be exercised end to end.
            vectors = vectors[:, :dims]
            vectors = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
        with state.lock:
            state.served += 1
            state.embedded.update(text_hash(t) for t in texts)
        data = [
            {"object": "embedding", "index": i, "embedding": _encode(v, fmt)} for i, v in enumerate(vectors)
        ]
        usage = {"prompt_tokens": result.billed_tokens, "total_tokens": result.billed_tokens}
        self._send(200, {"object": "list", "data": data, "model": self.server.model_name, "usage": usage})
        return None


def _parse_request(body: Any, native_dim: int) -> tuple[list[str], int | None, str]:
    if not isinstance(body, dict):
        raise InvalidInput("request body must be a JSON object")
    raw = body.get("input")
    texts = [raw] if isinstance(raw, str) else raw
    if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
        raise InvalidInput(
            "'input' must be a string or a non-empty list of strings (token arrays unsupported)"
        )
    if len(texts) > MAX_INPUTS:
        raise InvalidInput(f"'input' has {len(texts)} items; at most {MAX_INPUTS}")
    if any(t == "" for t in texts):
        raise InvalidInput("'input' contains an empty string")
    if not isinstance(body.get("model"), str):
        raise InvalidInput("'model' is required")
    dims = body.get("dimensions")
    if dims is not None and (not isinstance(dims, int) or not 1 <= dims <= native_dim):
        raise InvalidInput(f"'dimensions' must be an integer in 1..{native_dim}")
    fmt = body.get("encoding_format") or "float"
    if fmt not in ("float", "base64"):
        raise InvalidInput("'encoding_format' must be 'float' or 'base64'")
    return texts, dims, fmt


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
    plan: FaultPlan | None = None,
    model_name: str | None = None,
) -> tuple[EmbeddingHTTPServer, int]:
    """Serve in a daemon thread; returns the server (call `.stop()`) and the bound port."""
    server = EmbeddingHTTPServer((host, port), provider, model_name=model_name, api_key=api_key, plan=plan)
    thread = threading.Thread(target=server.serve_forever, name="embedding-server", daemon=True)
    thread.start()
    return server, int(server.server_address[1])
