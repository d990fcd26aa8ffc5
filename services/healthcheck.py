"""Container health check: one grpc.health.v1 Check call, exit 0 when SERVING.

Used by the image's HEALTHCHECK (`python -m services.healthcheck`), and by the chart's
probes when TLS is on (the kubelet's native `grpc:` probes cannot speak TLS). With
NEWSREC_TLS_CERT_FILE set it dials over TLS as the service's config says (NEWSREC_TLS_*:
CA bundle, its own certificate for mutual TLS, the name in the server's certificate).
"""

from __future__ import annotations

import argparse
import os
import sys

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

# Ports of the service contract, used when NEWSREC_GRPC_PORT is not set.
DEFAULT_PORTS = {"gateway": 50051, "user-encoder": 50052, "retrieval": 50053, "ranker": 50054}


def default_port(env: dict[str, str]) -> int:
    """The port to probe: NEWSREC_GRPC_PORT, else the contract port of NEWSREC_SERVICE."""
    raw = env.get("NEWSREC_GRPC_PORT")
    if raw:
        try:
            return int(raw)
        except ValueError:
            raise SystemExit(f"healthcheck: NEWSREC_GRPC_PORT={raw!r} is not a port number") from None
    service = env.get("NEWSREC_SERVICE", "gateway")
    if service not in DEFAULT_PORTS:
        raise SystemExit(f"healthcheck: NEWSREC_SERVICE={service!r} is not one of {sorted(DEFAULT_PORTS)}")
    return DEFAULT_PORTS[service]


def _channel(target: str, env: dict[str, str]) -> grpc.Channel:
    if not env.get("NEWSREC_TLS_CERT_FILE"):
        return grpc.insecure_channel(target)
    from services.config import load_config
    from services.security import channel_factory

    tls_env = {k: v for k, v in env.items() if k.startswith("NEWSREC_TLS_")}
    return channel_factory(load_config(env=tls_env))(target, ())


def check(
    target: str, service: str = "", timeout: float = 3.0, env: dict[str, str] | None = None
) -> tuple[bool, str]:
    """Call Check on `target`; return (serving, human-readable status)."""
    with _channel(target, env or {}) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        try:
            reply = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=timeout)
        except grpc.RpcError as exc:
            return False, f"{exc.code().name}: {exc.details()}"
    name = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
    return reply.status == health_pb2.HealthCheckResponse.SERVING, name


def main(argv: list[str] | None = None) -> int:
    """CLI entry point; returns the process exit code."""
    parser = argparse.ArgumentParser(prog="python -m services.healthcheck", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=None, help="default: $NEWSREC_GRPC_PORT")
    parser.add_argument("--service", default="", help="health service name; empty means the whole server")
    parser.add_argument("--timeout", type=float, default=3.0, help="seconds")
    args = parser.parse_args(argv)
    port = args.port if args.port is not None else default_port(dict(os.environ))
    target = f"{args.host}:{port}"
    ok, status = check(target, args.service, args.timeout, dict(os.environ))
    print(f"{target} {args.service or '<server>'}: {status}", file=sys.stdout if ok else sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
