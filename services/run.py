"""Run modes: one service per process (Kubernetes) or every service in one process (`--all`).

SIGTERM/SIGINT flip health to NOT_SERVING and stop with a grace period, so in-flight
calls finish while the load balancer stops sending new ones.
"""

from __future__ import annotations

import functools
import logging
import signal
import threading
from collections.abc import Callable
from typing import Any

from services import gateway, ranker, retrieval, user_encoder
from services.config import ServeConfig
from services.loading import deps_for, load_variant
from services.server import NewsrecServer
from services.stack import Stack, VariantDeps, start_stack

log = logging.getLogger("services.run")


def _wait_for_signal(stop: Callable[[], None]) -> None:
    done = threading.Event()

    def handler(signum: int, _frame: Any) -> None:
        log.info("signal received, draining", extra={"signal": signal.Signals(signum).name})
        done.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
    done.wait()
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
    server, port = create_one(config)
    print(f"{config.service} listening on :{port}  metrics on :{server.metrics_port}", flush=True)

    def stop() -> None:
        server.stop(config.grace_seconds).wait()

    _wait_for_signal(stop)


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
    stack.wait_ready(timeout=600)
    if on_ready is not None:
        on_ready(stack)
    _wait_for_signal(lambda: stack.stop(config.grace_seconds))
