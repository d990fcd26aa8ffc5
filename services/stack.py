"""Start every service of one or more variants in this process (`serve --all`, tests, benchmarks).

Each service still runs its own gRPC server and the gateway reaches the others over
loopback gRPC, so the embedded default exercises the same path as Kubernetes.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

from prometheus_client import CollectorRegistry, start_http_server

from newsrec.errors import Unavailable
from newsrec.index.articles import StoredArticle
from newsrec.index.base import VectorIndex
from newsrec.models.serving import ServingModel
from services import gateway, ranker, retrieval, user_encoder
from services.cache import VectorCache
from services.catalog import NewsCatalog, NewsInfo
from services.config import ServeConfig, VariantConfig
from services.inprocess import in_process
from services.server import NewsrecServer, metrics_addr

log = logging.getLogger("services.stack")


@dataclass
class VariantDeps:
    """Everything one variant's services need, already loaded."""

    model: ServingModel
    index: VectorIndex
    alias: str
    catalog: NewsCatalog
    cache: VectorCache
    provider: Any | None = None
    weight: float = 1.0
    # Upserted articles restored at load (services.loading.restore_upserts), by news id.
    upserted: dict[str, StoredArticle] = field(default_factory=dict)

    # Each service's deps from a loaded variant, built here only (split mode builds
    # them through services.loading.deps_for, from the same loaders).
    def user_encoder_deps(self) -> user_encoder.UserEncoderDeps:
        return user_encoder.UserEncoderDeps(self.model, self.cache)

    def retrieval_deps(self) -> retrieval.RetrievalDeps:
        return retrieval.RetrievalDeps(
            self.index, self.alias, self.model, self.catalog, self.provider, self.upserted
        )

    def ranker_deps(self) -> ranker.RankerDeps:
        return ranker.RankerDeps(self.model)


@dataclass
class Stack:
    servers: dict[str, NewsrecServer] = field(default_factory=dict)
    ports: dict[str, int] = field(default_factory=dict)
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)
    metrics_port: int | None = None
    _httpd: Any = None

    def start_drain(self) -> None:
        """Every server reports NOT_SERVING and keeps answering until `stop`."""
        for server in self.servers.values():
            server.start_drain()

    def stop(self, grace: float | None = None) -> None:
        """Drain the gateway first, then stop the backends, within `grace` seconds in all.

        The gateway's in-flight calls still need the backends for their later stages
        (over loopback gRPC a stopped backend refuses them at once), so the backends only
        stop once the gateway has finished; they get what is left of the grace period."""
        deadline = None if grace is None else time.monotonic() + grace
        gateway_server = self.servers.get("gateway")
        if gateway_server is not None:
            gateway_server.stop(grace).wait()
        left = None if deadline is None else max(0.0, deadline - time.monotonic())
        events = [server.stop(left) for name, server in self.servers.items() if name != "gateway"]
        for ev in events:
            ev.wait()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def wait_ready(self, timeout: float = 60.0) -> None:
        """Block until every server is loaded; raise at once when a loader failed."""
        deadline = time.monotonic() + timeout
        for name, server in self.servers.items():
            while not server.ready.wait(min(0.05, max(0.0, deadline - time.monotonic()))):
                if server.load_error is not None:
                    exc = server.load_error
                    raise Unavailable(f"{name} failed to load: {type(exc).__name__}: {exc}") from exc
                if time.monotonic() >= deadline:
                    raise TimeoutError(f"{name} not ready after {timeout}s")


def start_stack(
    config: ServeConfig,
    variants: dict[str, VariantDeps | Callable[[], VariantDeps]],
    host: str = "127.0.0.1",
    in_process: bool = False,
) -> Stack:
    """Start user-encoder, retrieval and ranker per variant on free ports, and a gateway on
    `config.port()` (0 = free) routing to them. Loaders (callables) run once per variant.

    `in_process=True` makes the gateway call the servicers directly instead of over
    loopback gRPC (the other servers still listen, for direct use and health checks).
    A failed start (e.g. a port in use) stops the servers it had started before raising."""
    stack = Stack()
    try:
        _start_servers(stack, config, variants, host, in_process)
    except BaseException:
        stack.stop(0)
        raise
    return stack


def _start_servers(
    stack: Stack,
    config: ServeConfig,
    variants: dict[str, VariantDeps | Callable[[], VariantDeps]],
    host: str,
    in_process: bool,
) -> None:
    gw_variants: list[VariantConfig] = []
    loaders = {name: _Once(deps) for name, deps in variants.items()}
    for name, deps in variants.items():
        loaded = loaders[name]
        vcfg = config.model_copy(update={"variant": name, "grpc_port": 0, "host": host})
        ue, ue_port = user_encoder.create_server(vcfg, loaded.ue_deps, stack.registry, start_metrics=False)
        rt, rt_port = retrieval.create_server(vcfg, loaded.rt_deps, stack.registry, start_metrics=False)
        rk, rk_port = ranker.create_server(vcfg, loaded.rk_deps, stack.registry, start_metrics=False)
        started = (("user-encoder", ue, ue_port), ("retrieval", rt, rt_port), ("ranker", rk, rk_port))
        for svc, server, port in started:
            stack.servers[f"{svc}/{name}"] = server
            stack.ports[f"{svc}/{name}"] = port
        weight = deps.weight if isinstance(deps, VariantDeps) else 1.0
        existing = {v.name: v for v in config.gateway.variants}
        gw_variants.append(
            VariantConfig(
                name=name,
                model_version=existing[name].model_version if name in existing else "",
                weight=existing[name].weight if name in existing else weight,
                user_encoder=f"{host}:{ue_port}",
                retrieval=f"{host}:{rt_port}",
                ranker=f"{host}:{rk_port}",
            )
        )
    gw_section = config.gateway.model_copy(update={"variants": gw_variants})
    gw_cfg = config.model_copy(update={"service": "gateway", "host": host, "gateway": gw_section})

    def gateway_deps() -> gateway.GatewayDeps:
        backends = {}
        for v in gw_variants:
            loaded = loaders[v.name]()
            if in_process:
                fallback = gateway.fallback_for(gw_section, loaded.catalog)
                backends[v.name] = _in_process_backend(stack, v, fallback)
            else:
                # the encoder of this stack shares `loaded.cache` with the gateway
                backends[v.name] = gateway.backend_for(gw_cfg, v, loaded.model, loaded.catalog, loaded.cache)
        return gateway.GatewayDeps(backends)

    gw, gw_port = gateway.create_server(gw_cfg, gateway_deps, stack.registry, start_metrics=False)
    stack.servers["gateway"] = gw
    stack.ports["gateway"] = gw_port
    if config.metrics_port is not None:
        httpd, _ = start_http_server(config.metrics_port, addr=metrics_addr(host), registry=stack.registry)
        stack._httpd = httpd
        stack.metrics_port = int(httpd.server_port)


def _in_process_backend(
    stack: Stack, v: VariantConfig, fallback: list[tuple[NewsInfo, float]]
) -> gateway.VariantBackend:
    def stub(server_key: str, method: str) -> SimpleNamespace:
        server = stack.servers[f"{server_key}/{v.name}"]
        binding = server.bindings[0]
        return SimpleNamespace(
            **{method: in_process(getattr(binding.servicer, method), binding.histogram, method, v.name)}
        )

    return gateway.VariantBackend(
        v,
        stub("user-encoder", "EncodeUser"),
        stub("retrieval", "Retrieve"),
        stub("ranker", "Rank"),
        fallback,
    )


class _Once:
    """Run a variant's loader once, however many servers ask for it."""

    def __init__(self, source: VariantDeps | Callable[[], VariantDeps]) -> None:
        self._source = source
        self._value: VariantDeps | None = source if isinstance(source, VariantDeps) else None
        self._error: BaseException | None = None
        self._lock = threading.Lock()

    def __call__(self) -> VariantDeps:
        with self._lock:
            if self._error is not None:  # failed once: the same answer for every server
                raise self._error
            if self._value is None:
                assert callable(self._source)
                try:
                    self._value = self._source()
                except BaseException as exc:
                    self._error = exc
                    raise
            return self._value

    def ue_deps(self) -> user_encoder.UserEncoderDeps:
        return self().user_encoder_deps()

    def rt_deps(self) -> retrieval.RetrievalDeps:
        return self().retrieval_deps()

    def rk_deps(self) -> ranker.RankerDeps:
        return self().ranker_deps()
