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

from newsrec.errors import InvalidInput
from services import gateway, ranker, retrieval, user_encoder
from services.cache import VectorCache
from services.catalog import popular_fresh
from services.config import ServeConfig, VariantConfig
from services.loading import build_cache, build_catalog, load_model, load_variant, resolve_serving
from services.lookaside import lookaside_for
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


def _gateway_backend(
    config: ServeConfig, variant: VariantConfig, cache: VectorCache | None
) -> gateway.VariantBackend:
    """Connect one variant: its popular-and-fresh fallback list (empty when no registry is
    configured) and, with a shared Redis cache, the look-aside into its encoder's cache."""
    if config.registry is None and config.serving_dir is None:
        log.warning("no registry configured: the gateway has no fallback list")
        return gateway.VariantBackend.connect(variant, [])
    cfg = config.model_copy(update={"model_version": variant.model_version or config.model_version})
    serving, _alias, _manifest = resolve_serving(cfg)
    model = load_model(serving)
    catalog = build_catalog(model, list(config.news_files))
    fallback = popular_fresh(catalog, config.gateway.fallback_size, config.gateway.freshness_half_life_hours)
    lookaside = lookaside_for(config.gateway.user_cache_lookaside, variant.model_version, cache, model)
    return gateway.VariantBackend.connect(variant, fallback, lookaside)


def create_one(config: ServeConfig) -> tuple[NewsrecServer, int]:
    """Start the single service `config.service`; loading happens in the background."""
    name = config.service
    if name == "user-encoder":

        def ue() -> user_encoder.UserEncoderDeps:
            serving, _, _ = resolve_serving(config)
            return user_encoder.UserEncoderDeps(load_model(serving), build_cache(config.cache))

        return user_encoder.create_server(config, ue)
    if name == "retrieval":

        def rt() -> retrieval.RetrievalDeps:
            v = load_variant(config)
            return retrieval.RetrievalDeps(v.index, v.alias, v.model, v.catalog, v.provider)

        return retrieval.create_server(config, rt)
    if name == "ranker":

        def rk() -> ranker.RankerDeps:
            serving, _, _ = resolve_serving(config)
            return ranker.RankerDeps(load_model(serving))

        return ranker.create_server(config, rk)
    if name == "gateway":

        def gw() -> gateway.GatewayDeps:
            # Only a Redis cache is shared with the encoders; a local LRU would never be written.
            cache = build_cache(config.cache) if config.cache.redis_url else None
            return gateway.GatewayDeps(
                {v.name: _gateway_backend(config, v, cache) for v in config.gateway.variants}
            )

        return gateway.create_server(config, gw)
    raise InvalidInput(f"service: {name!r} is not one service; use serve --all for every service")


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
