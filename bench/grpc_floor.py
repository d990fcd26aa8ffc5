"""The CPU floor of Python gRPC on the serving path: what a hop costs before any work.

A split-mode Recommend crosses three servers (gateway, retrieval, ranker) and makes two
client calls from the gateway. This script measures, with calls spaced `--gap-ms` apart
as at 100 RPS (and back to back for contrast), the process CPU per request of:

- `echo`: a bare unary server (what the retrieval and ranker servers pay per call);
- `relay`: a server that calls a bare backend twice per request (what the gateway pays
  per Recommend before its own logic), as a sync `grpc.server` and as `grpc.aio`.

Each flavour runs in its own process; rounds alternate the flavours so a slow minute of
the host hits both. Medians over rounds; only same-run ratios mean anything here.

    .venv/bin/python bench/grpc_floor.py
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import time
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
from serving_inputs import write_report

ROOT = Path(__file__).resolve().parents[1]
METHOD = "/bench.Floor/Echo"
FLAVOURS = ("echo", "relay", "relay-aio")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def process_cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _handler(fn: Any) -> grpc.GenericRpcHandler:
    echo = grpc.unary_unary_rpc_method_handler(fn)
    return grpc.method_handlers_generic_handler("bench.Floor", {"Echo": echo})


def serve_echo(port: int) -> None:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=16))
    server.add_generic_rpc_handlers((_handler(lambda request, context: request),))
    server.add_insecure_port(f"127.0.0.1:{port}")
    server.start()
    print("ready", flush=True)
    server.wait_for_termination()


def serve_relay(port: int, backend: int) -> None:
    call = grpc.insecure_channel(f"127.0.0.1:{backend}").unary_unary(METHOD)

    def relay(request: bytes, context: grpc.ServicerContext) -> bytes:
        return call(call(request, timeout=2), timeout=2)  # type: ignore[no-any-return]

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=16))
    server.add_generic_rpc_handlers((_handler(relay),))
    server.add_insecure_port(f"127.0.0.1:{port}")
    server.start()
    print("ready", flush=True)
    server.wait_for_termination()


def serve_relay_aio(port: int, backend: int) -> None:
    async def main() -> None:
        call = grpc.aio.insecure_channel(f"127.0.0.1:{backend}").unary_unary(METHOD)

        async def relay(request: bytes, context: Any) -> bytes:
            return await call(await call(request, timeout=2), timeout=2)  # type: ignore[no-any-return]

        server = grpc.aio.server()
        server.add_generic_rpc_handlers((_handler(relay),))
        server.add_insecure_port(f"127.0.0.1:{port}")
        await server.start()
        print("ready", flush=True)
        await server.wait_for_termination()

    asyncio.run(main())


def start(args: list[str]) -> subprocess.Popen[str]:
    proc = subprocess.Popen([sys.executable, __file__, *args], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    if proc.stdout.readline().strip() != "ready":
        raise RuntimeError(f"{args[0]} server did not start")
    return proc


def cpu_ms_per_call(pid: int, port: int, calls: int, gap_s: float) -> float:
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    call = channel.unary_unary(METHOD)
    payload = b"x" * 64
    for _ in range(50):  # connect and warm up
        call(payload, timeout=2)
    before = process_cpu_seconds(pid)
    for _ in range(calls):
        if gap_s:
            time.sleep(gap_s)
        call(payload, timeout=2)
    used = process_cpu_seconds(pid) - before
    channel.close()
    return used * 1000 / calls


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--calls", type=int, default=500, help="calls per flavour, schedule and round")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--gap-ms", type=float, default=10.0)
    p.add_argument("--out", type=Path, default=ROOT / "bench/out/grpc_floor.json")
    p.add_argument("--serve", nargs="+", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.serve:
        kind, port, *rest = args.serve
        servers = {"echo": serve_echo, "relay": serve_relay, "relay-aio": serve_relay_aio}
        servers[kind](int(port), *map(int, rest))
        return

    backend_port = free_port()
    backend = start(["--serve", "echo", str(backend_port)])
    results: dict[str, dict[str, list[float]]] = {f: {"back_to_back": [], "spaced": []} for f in FLAVOURS}
    try:
        for r in range(args.rounds):
            for flavour in FLAVOURS:
                port = free_port()
                extra = [] if flavour == "echo" else [str(backend_port)]
                server = start(["--serve", flavour, str(port), *extra])
                try:
                    for schedule, gap in (("back_to_back", 0.0), ("spaced", args.gap_ms / 1e3)):
                        results[flavour][schedule].append(cpu_ms_per_call(server.pid, port, args.calls, gap))
                finally:
                    server.kill()
                    server.wait()
            print(f"round {r + 1}/{args.rounds} done", flush=True)
    finally:
        backend.kill()
        backend.wait()

    print(f"\nserver CPU ms per request (median of {args.rounds} rounds of {args.calls} calls)")
    print(f"{'server':10s} {'back to back':>13s} {'every ' + str(args.gap_ms) + ' ms':>15s}")
    summary = {}
    for flavour, runs in results.items():
        hot, spaced = statistics.median(runs["back_to_back"]), statistics.median(runs["spaced"])
        summary[flavour] = {"back_to_back_ms": round(hot, 3), "spaced_ms": round(spaced, 3)}
        print(f"{flavour:10s} {hot:13.3f} {spaced:15.3f}")
    report = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "cpus": os.cpu_count(),
        "grpcio": grpc.__version__,
        "gap_ms": args.gap_ms,
        "calls": args.calls,
        "rounds": results,
        "median": summary,
    }
    write_report(args.out, report)


if __name__ == "__main__":
    main()
