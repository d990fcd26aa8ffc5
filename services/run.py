"""Run modes: one service per process (Kubernetes) or every service in one process (`--all`).

SIGTERM/SIGINT flip health to NOT_SERVING, keep answering for `drain_seconds` while the
load balancer stops sending, then close the port and give in-flight calls `grace_seconds`.
"""

from __future__ import annotations

import functools
import logging
import signal
import threading
from collections.abc import Callable
from typing import Any

from newsrec.errors import NewsrecError, Unavailable
from services import gateway, ranker, retrieval, user_encoder
from services.config import ServeConfig
from services.loading import deps_for, load_variant
from services.server import NewsrecServer
from services.stack import Stack, VariantDeps, start_stack

log = logging.getLogger("services.run")


class _Signals:
    """SIGTERM/SIGINT: the first starts the drain, a second one skips what is left of it."""

    def __init__(self) -> None:
        self.stop = threading.Event()
        self.hurry = threading.Event()
        signal.signal(signal.SIGTERM, self._handle)
        signal.signal(signal.SIGINT, self._handle)

    def _handle(self, signum: int, _frame: Any) -> None:
        name = signal.Signals(signum).name
        if self.stop.is_set():
            log.info("second signal: skipping the rest of the drain", extra={"signal": name})
            self.hurry.set()
            return
        log.info("signal received, draining", extra={"signal": name})
        self.stop.set()


def _drain(
    config: ServeConfig, signals: _Signals, start_drain: Callable[[], None], stop: Callable[[], object]
) -> None:
    """NOT_SERVING first, answer everything for `drain_seconds` (a load balancer follows the
    health change or the endpoint removal meanwhile), then `stop` (grace for in-flight calls)."""
    start_drain()
    if config.drain_seconds > 0:
        log.info("NOT_SERVING, still answering", extra={"drain_seconds": config.drain_seconds})
        signals.hurry.wait(config.drain_seconds)
    log.info("closing the port; in-flight calls finish", extra={"grace_seconds": config.grace_seconds})
    stop()


def create_one(config: ServeConfig) -> tuple[NewsrecServer, int]:
    """Start the single service `config.service`; loading happens in the background."""
    servers: dict[str, Callable[..., tuple[NewsrecServer, int]]] = {
        "user-encoder": user_encoder.create_server,
        "retrieval": retrieval.create_server,
        "ranker": ranker.create_server,
        "gateway": gateway.create_server,
    }
    loader = deps_for(config.service, config)  # names the problem for "all" or a typo
    return servers[config.service](config, loader)


def serve_one(config: ServeConfig) -> None:
    """Serve until a signal (then drain), or until loading fails: an expected failure (bad
    registry, Milvus down) ends the process with its one-line reason, so Kubernetes shows it
    and restarts the pod, instead of a pod that stays NOT_SERVING and says nothing."""
    server, port = create_one(config)
    print(f"{config.service} listening on :{port}  metrics on :{server.metrics_port}", flush=True)
    signals = _Signals()
    while not signals.stop.wait(0.1):
        exc = server.load_error
        if exc is not None:
            server.stop(0).wait()
            if isinstance(exc, NewsrecError):
                raise exc
            raise Unavailable(f"{config.service} failed to load: {type(exc).__name__}: {exc}") from exc
    _drain(config, signals, server.start_drain, lambda: server.stop(config.grace_seconds).wait())


def start_all(config: ServeConfig) -> Stack:
    """Every service in this process: one variant per configured gateway variant (each with
    its own model version), or a single `default` variant of `config.model_version`."""
    variants: dict[str, VariantDeps | Callable[[], VariantDeps]] = {}
    if config.gateway.variants:
        for v in config.gateway.variants:
            cfg = config.model_copy(update={"model_version": v.model_version or config.model_version})
            variants[v.name] = functools.partial(load_variant, cfg, weight=v.weight)
    else:
        variants["default"] = functools.partial(load_variant, config)
    host = "127.0.0.1" if config.host == "[::]" else config.host
    return start_stack(config, variants, host=host, in_process=config.gateway.in_process)


def serve_all(config: ServeConfig, on_ready: Callable[[Stack], None] | None = None) -> None:
    stack = start_all(config)
    try:
        stack.wait_ready(timeout=600)
    except BaseException:
        stack.stop(0)
        raise
    if on_ready is not None:
        on_ready(stack)
    signals = _Signals()
    signals.stop.wait()
    _drain(config, signals, stack.start_drain, lambda: stack.stop(config.grace_seconds))
