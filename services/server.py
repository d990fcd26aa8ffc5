"""Shared server bootstrap: gRPC server, interceptor, health, reflection, metrics HTTP.

Sync gRPC with a thread pool: the work per call is a blocking numpy/torch/Milvus call,
and the measured unary round trip of the sync server was on par with grpc.aio here
(see docs/benchmarks/serving.md), so threads keep the code simple.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import threading
from collections.abc import Callable, Sequence
from concurrent import futures
from dataclasses import dataclass, field
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from prometheus_client import CollectorRegistry, Histogram, start_http_server

from newsrec.errors import NewsrecError
from services import security
from services.config import ServeConfig
from services.interceptors import ErrorMetricsInterceptor
from services.metrics import start_at_zero

log = logging.getLogger("services.server")


@dataclass(frozen=True)
class ServiceBinding:
    """One gRPC service to host: its full name, the generated add-function and the servicer."""

    full_name: str
    add: Callable[[Any, grpc.Server], None]
    servicer: Any
    histogram: Histogram | None


@dataclass
class NewsrecServer:
    """A started gRPC server with its health servicer and metrics endpoint."""

    grpc_server: grpc.Server
    port: int
    health: health.HealthServicer
    service_names: list[str]
    registry: CollectorRegistry
    metrics_port: int | None = None
    ready: threading.Event = field(default_factory=threading.Event)
    load_error: BaseException | None = None
    bindings: list[ServiceBinding] = field(default_factory=list)
    _httpd: Any = None
    draining: bool = False
    # Called once by `stop` (e.g. the gateway's feedback writer: flush, then end its thread).
    closers: list[Callable[[], None]] = field(default_factory=list)

    def set_serving(self, serving: bool) -> None:
        if serving and self.draining:  # a load finishing during the drain must not undo it
            return
        status = (
            health_pb2.HealthCheckResponse.SERVING if serving else health_pb2.HealthCheckResponse.NOT_SERVING
        )
        for name in ("", *self.service_names):
            self.health.set(name, status)

    def start_drain(self) -> None:
        """Report NOT_SERVING for good while still answering every call (see `stop`)."""
        self.draining = True
        self.set_serving(False)

    def stop(self, grace: float | None = None) -> threading.Event:
        """Stop taking new calls, let in-flight calls finish within `grace` seconds."""
        self.start_drain()
        done: threading.Event = self.grpc_server.stop(grace)
        closers, self.closers = self.closers, []
        for close in closers:
            close()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        return done

    def wait_for_termination(self, timeout: float | None = None) -> bool:
        return bool(self.grpc_server.wait_for_termination(timeout))


def start_server(
    config: ServeConfig,
    bindings: Sequence[ServiceBinding],
    registry: CollectorRegistry,
    loader: Callable[[], None] | None = None,
    start_metrics: bool = True,
) -> tuple[NewsrecServer, int]:
    """Start serving `bindings` on `config.host:config.port()` (0 picks a free port).

    Health says NOT_SERVING until `loader` (run on a background thread) returns, then SERVING.
    """
    histograms = {b.full_name.rsplit(".", 1)[-1]: b.histogram for b in bindings}
    interceptors: list[grpc.ServerInterceptor] = []
    token = security.auth_token(config.auth)
    if token:  # first: a call without the token costs no decoding, no metrics
        interceptors.append(security.TokenAuthInterceptor(token))
    interceptors.append(ErrorMetricsInterceptor(histograms.get, variant=config.variant))
    credentials = security.server_credentials(config.tls)  # reads the files before binding
    grpc_server = grpc.server(
        futures.ThreadPoolExecutor(
            max_workers=config.max_workers, thread_name_prefix=f"grpc-{config.service}"
        ),
        interceptors=interceptors,
        options=[("grpc.so_reuseport", 0)],
    )
    for b in bindings:
        b.add(b.servicer, grpc_server)
    health_servicer = health.HealthServicer(experimental_non_blocking=True)
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, grpc_server)
    names = [b.full_name for b in bindings]
    reflection.enable_server_reflection(
        (*names, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME),
        grpc_server,
    )
    port = _bind(grpc_server, f"{config.host}:{config.port()}", credentials)
    server = NewsrecServer(grpc_server, port, health_servicer, names, registry)
    server.bindings = list(bindings)
    server.set_serving(False)
    start_at_zero(registry, histograms.values(), config.variant, [v.name for v in config.gateway.variants])
    if start_metrics and config.metrics_port is not None:
        httpd, _ = start_http_server(config.metrics_port, addr=metrics_addr(config.host), registry=registry)
        server._httpd = httpd
        server.metrics_port = int(httpd.server_port)
    grpc_server.start()
    log.info("grpc server started", extra={"service": config.service, "port": port, "services": names})

    def load() -> None:
        try:
            if loader is not None:
                loader()
        except BaseException as exc:  # stays NOT_SERVING; the reason is kept for the owner
            server.load_error = exc
            _log_load_failure(config.service, exc)
            return
        freeze_loaded_objects()
        server.set_serving(True)
        server.ready.set()
        log.info("serving", extra={"service": config.service, "port": port})

    threading.Thread(target=load, name=f"load-{config.service}", daemon=True).start()
    return server, port


def _log_load_failure(service: str, exc: BaseException) -> None:
    """An expected failure (NewsrecError: a bad registry, Milvus down) is the operator's to
    fix and is reported by whoever waits for the load (`serve` prints one line), so its
    traceback is for debugging only; anything else is a bug, logged with its traceback once
    (servers sharing one loader, `serve --all`, see the same exception)."""
    if isinstance(exc, NewsrecError):
        log.debug("loading failed: staying NOT_SERVING", exc_info=exc, extra={"service": service})
        return
    if getattr(exc, "_newsrec_logged", False):
        return
    log.error("loading failed: staying NOT_SERVING", exc_info=exc, extra={"service": service})
    with contextlib.suppress(AttributeError):  # an exception type with __slots__
        exc._newsrec_logged = True  # type: ignore[attr-defined]


def metrics_addr(host: str) -> str:
    """The metrics HTTP server's bind address: the gRPC host, so a service bound to
    127.0.0.1 does not expose its metrics on every interface. A wildcard stays 0.0.0.0 (as
    before: `::` fails on a host without IPv6, where grpc's `[::]` falls back by itself)."""
    bare = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    return "0.0.0.0" if bare in ("", "::", "0.0.0.0") else bare


def _bind(grpc_server: grpc.Server, address: str, credentials: grpc.ServerCredentials | None = None) -> int:
    """`add_insecure_port` (or `add_secure_port` with TLS credentials), failing with an
    OSError naming `address`: older grpcio returned 0, grpcio >= 1.85 raises
    RuntimeError("Failed to bind to address ...")."""
    try:
        if credentials is None:
            port = int(grpc_server.add_insecure_port(address))
        else:
            port = int(grpc_server.add_secure_port(address, credentials))
    except RuntimeError as exc:
        if not str(exc).startswith("Failed to bind"):
            raise
        port = 0
    if port == 0:
        grpc_server.stop(None)  # never started: frees its thread pool
        raise OSError(f"could not bind gRPC port {address} (in use, or not permitted)")
    return port


def freeze_loaded_objects() -> None:
    """Move everything loaded so far out of the cyclic GC's reach (`gc.freeze`).

    A loaded model, catalog and index copy are ~300k tracked objects that live as long as
    the process; a full collection over them took 250 ms, a pause every in-flight request
    would wait out. Frozen, a full collection takes microseconds. Objects created by
    requests are still collected as usual."""
    gc.collect()
    gc.freeze()


def full_name(file_descriptor: Any, service: str) -> str:
    """Fully qualified gRPC service name, e.g. newsrec.v1.RecommendService."""
    return str(file_descriptor.services_by_name[service].full_name)
