"""Test-only fault injection for the embedding server (never part of the product).

`FaultyEmbeddingServer` is the product `EmbeddingHTTPServer` plus a fault plan (429
bursts with `Retry-After`, 500 bursts, dropped connections, delays, always-failing texts,
a gate that holds requests), a `POST /admin/faults` route to change the plan over HTTP,
and counters per sha256 of each embedded text, so tests prove no text is paid twice.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass, fields
from typing import Any

from newsrec.embed.providers import EmbeddingProvider
from newsrec.embed.server import EmbeddingHTTPServer, RequestError, start_embedding_server

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
            raise ValueError(f"fault plan: unknown field(s) {unknown}; known: {sorted(known)}")
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

    def pick_fault(self, texts: list[str]) -> tuple[str | None, FaultPlan]:
        with self.lock:
            self.requests += 1
            plan, fault = self.plan, None
            if plan.rate_limit > 0:
                plan.rate_limit, fault = plan.rate_limit - 1, "429"
            elif plan.server_error > 0:
                plan.server_error, fault = plan.server_error - 1, "500"
            elif plan.drop > 0:
                plan.drop, fault = plan.drop - 1, "drop"
            elif plan.fail_substring and any(plan.fail_substring in t for t in texts):
                fault = "fail"
            elif plan.block_after is not None and self.served >= plan.block_after:
                fault, self.blocked = "block", self.blocked + 1
            if fault:
                self.faults[fault] += 1
        return fault, plan


class FaultyEmbeddingServer(EmbeddingHTTPServer):
    """The product server with the fault plan applied through its test hooks."""

    def __init__(self, *args: Any, plan: FaultPlan | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.state = ServerState(plan)

    def intercept(self, handler: Any, texts: list[str]) -> bool:
        fault, plan = self.state.pick_fault(texts)
        if plan.delay:
            time.sleep(plan.delay)
        if fault == "429":
            extra = {"Retry-After": f"{plan.retry_after:g}"} if plan.retry_after is not None else {}
            err = RequestError(429, "rate limit reached (injected)", "rate_limit_exceeded", headers=extra)
        elif fault == "500":
            err = RequestError(500, "internal error (injected)")
        elif fault == "fail":
            err = RequestError(plan.fail_status, "input rejected (injected)")
        elif fault in ("block", "drop"):
            if fault == "block":
                self.state.wait_release()
            handler.close_connection = True  # no response at all: the client sees a dropped connection
            return True
        else:
            return False
        handler.send_error_json(err)
        return True

    def served(self, texts: list[str]) -> None:
        with self.state.lock:
            self.state.served += 1
            self.state.embedded.update(text_hash(t) for t in texts)

    def extra_post(self, handler: Any, path: str, body: Any) -> bool:
        if path != "/admin/faults":
            return False
        try:
            plan = FaultPlan.from_dict(body or {})
        except (TypeError, ValueError) as exc:
            raise RequestError(400, str(exc)) from None
        self.state.set_plan(plan)
        handler.send_json(200, {"plan": asdict(plan)})
        return True

    def auth_failure_message(self, presented: str) -> str:
        message = super().auth_failure_message(presented)
        return f"{message}: {presented}" if self.state.plan.echo_key_on_401 else message

    def stop(self) -> None:
        self.state.release()
        super().stop()


def start_faulty_server(
    provider: EmbeddingProvider, *, plan: FaultPlan | None = None, **kwargs: Any
) -> tuple[FaultyEmbeddingServer, int]:
    """`start_embedding_server` with a fault plan; returns (server, port)."""
    server, port = start_embedding_server(provider, server_class=FaultyEmbeddingServer, **kwargs)
    assert isinstance(server, FaultyEmbeddingServer)
    if plan is not None:
        server.state.set_plan(plan)
    return server, port
