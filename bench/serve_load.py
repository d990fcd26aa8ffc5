"""Load test of the Recommend path over gRPC, with a bare echo RPC server as the floor.

Starts the services itself (one service per process plus a private redis-server, and/or
`newsrec serve --all`), then for each target runs a closed loop at several concurrency
levels and an open loop at a fixed rate (latency measured from the scheduled send time,
so a slow server cannot hide queueing). Prints tables, writes JSON and PNG plots.

    .venv/bin/python bench/serve_load.py --serving RUN/serving --news DATA/train/news.tsv \
        --behaviors DATA/dev/behaviors.tsv --modes split,all --rate 100 --duration 60

Everything runs on loopback and stops by itself; all child processes are killed on exit.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent import futures
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from serving_inputs import load_users  # noqa: E402

from services.generated.newsrec.v1 import recommend_pb2, recommend_pb2_grpc  # noqa: E402

ECHO_METHOD = "/bench.Echo/Echo"
SLOW_MS = 30.0  # the p99 goal; requests slower than this are "slow" below
# The gateway reaches each backend at one address, as the chart's headless Service does with
# one pod per backend (dns:/// gives one address per pod). `localhost` resolves to 127.0.0.1
# and ::1 here, so round_robin kept two connections per backend, each used every other call:
# 8.17 vs 9.31 and 9.58 vs 10.57 ms of CPU per request in two paired 30 s runs (2026-12-01).
# `--backend-host` overrides it.
BACKEND_HOST = "127.0.0.1"


# ---------------------------------------------------------------- processes
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def echo_server(port: int) -> None:
    """A bare unary RPC (bytes in, bytes out, no protobuf) on a thread-pool server."""

    def echo(request: bytes, context: grpc.ServicerContext) -> bytes:
        return request

    handler = grpc.method_handlers_generic_handler(
        "bench.Echo", {"Echo": grpc.unary_unary_rpc_method_handler(echo)}
    )
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=16))
    server.add_generic_rpc_handlers((handler,))
    server.add_insecure_port(f"127.0.0.1:{port}")
    server.start()
    server.wait_for_termination()


def echo_server_aio(port: int) -> None:
    """The same bare RPC on grpc.aio, to compare the two server flavours in one run."""
    import asyncio

    async def echo(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        return request

    async def serve() -> None:
        handler = grpc.method_handlers_generic_handler(
            "bench.Echo", {"Echo": grpc.unary_unary_rpc_method_handler(echo)}
        )
        server = grpc.aio.server()
        server.add_generic_rpc_handlers((handler,))
        server.add_insecure_port(f"127.0.0.1:{port}")
        await server.start()
        await server.wait_for_termination()

    asyncio.run(serve())


@dataclass
class Procs:
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    names: dict[int, str] = field(default_factory=dict)  # pid -> log stem (service name)

    def start(self, args: list[str], log: Path, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        out = log.open("wb")
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
        self.procs.append(proc)
        self.names[proc.pid] = log.stem
        return proc

    def cpu_seconds(self) -> dict[str, float]:
        """User+system CPU seconds so far of each running child, and of this process (`client`)."""
        out = {"client": time.process_time()}
        for p in self.procs:
            with suppress(OSError):
                out[self.names[p.pid]] = process_cpu_seconds(p.pid)
        return out

    def stop_all(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.terminate()
        for p in self.procs:
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                p.kill()
        self.procs.clear()


def process_cpu_seconds(pid: int) -> float:
    """utime + stime of a process from /proc (Linux), in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait_serving(port: int, timeout: float = 600) -> None:
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    deadline = time.monotonic() + timeout
    with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
        stub = health_pb2_grpc.HealthStub(ch)
        while time.monotonic() < deadline:
            with suppress(grpc.RpcError):
                if stub.Check(health_pb2.HealthCheckRequest(), timeout=1).status == 1:
                    return
            time.sleep(0.2)
    raise TimeoutError(f"port {port} not SERVING after {timeout}s")


def wait_port(port: int, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listening on {port}")


NEWSREC = [sys.executable, "-c", "from newsrec.cli import main; main()"]


@contextmanager
def split_stack(args: argparse.Namespace, work: Path, procs: Procs) -> Iterator[int]:
    """redis-server + one process per service, as on Kubernetes. Yields the gateway port."""
    redis_port = free_port()
    procs.start(
        [
            "redis-server",
            "--port",
            str(redis_port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ],
        work / "redis.log",
    )
    wait_port(redis_port)
    ports = {name: free_port() for name in ("gateway", "user-encoder", "retrieval", "ranker")}
    cfg = {
        "serving_dir": str(args.serving),
        "news_files": [str(p) for p in args.news],
        "milvus_uri": str(work / "split_milvus.db"),
        "cache": {"redis_url": f"redis://127.0.0.1:{redis_port}/0"},
        "log_level": "WARNING",
        "gateway": {
            "variants": [
                {
                    "name": "a",
                    # pinned, as the Helm chart pins every variant: the gateway may then read
                    # the encoder's Redis cache itself (services/lookaside.py)
                    "model_version": json.loads((args.serving / "config.json").read_text())["model_version"],
                    "weight": 1,
                    "user_encoder": f"dns:///{args.backend_host}:{ports['user-encoder']}",
                    "retrieval": f"dns:///{args.backend_host}:{ports['retrieval']}",
                    "ranker": f"dns:///{args.backend_host}:{ports['ranker']}",
                }
            ]
        },
    }
    path = work / "split.yaml"
    path.write_text(json.dumps(cfg))  # JSON is YAML
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "OMP_NUM_THREADS": "1"}
    for name in ("retrieval", "user-encoder", "ranker", "gateway"):
        penv = {**env, "NEWSREC_VARIANT": "a"}
        procs.start(
            [
                *NEWSREC,
                "serve",
                "--service",
                name,
                "--config",
                str(path),
                "--port",
                str(ports[name]),
                "--metrics-port",
                str(free_port()),
            ],
            work / f"{name}.log",
            penv,
        )
    for name in ("retrieval", "user-encoder", "ranker", "gateway"):
        wait_serving(ports[name])
    yield ports["gateway"]


@contextmanager
def all_stack(args: argparse.Namespace, work: Path, procs: Procs) -> Iterator[int]:
    port = free_port()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "OMP_NUM_THREADS": "1"}
    news = [x for p in args.news for x in ("--news", str(p))]
    procs.start(
        [
            *NEWSREC,
            "serve",
            "--all",
            "--serving",
            str(args.serving),
            *news,
            "--milvus-uri",
            str(work / "all_milvus.db"),
            "--port",
            str(port),
            "--metrics-port",
            str(free_port()),
        ],
        work / "all.log",
        {**env, "NEWSREC_LOG_LEVEL": "WARNING"},
    )
    wait_serving(port)
    yield port


# ---------------------------------------------------------------- load
@dataclass
class Result:
    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    stages: dict[str, list[float]] = field(default_factory=dict)
    degraded: int = 0
    seconds: float = 0.0
    # (scheduled send time, latency) of every answered request, perf_counter seconds
    timeline: list[tuple[float, float]] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        lat = np.array(self.latencies) * 1000
        pct = np.percentile(lat, [50, 95, 99]) if lat.size else [float("nan")] * 3
        out: dict[str, Any] = {
            "requests": len(self.latencies) + self.errors,
            "rps": (len(self.latencies) + self.errors) / self.seconds if self.seconds else 0.0,
            "p50_ms": float(pct[0]),
            "p95_ms": float(pct[1]),
            "p99_ms": float(pct[2]),
            "errors": self.errors,
            "degraded": self.degraded,
        }
        if self.timeline:
            out.update(tail_clustering(self.timeline, SLOW_MS))
        if self.stages:
            out["stages_p50_ms"] = {k: float(np.percentile(v, 50) * 1000) for k, v in self.stages.items()}
            out["stages_p99_ms"] = {k: float(np.percentile(v, 99) * 1000) for k, v in self.stages.items()}
        return out


def tail_clustering(timeline: list[tuple[float, float]], slow_ms: float) -> dict[str, Any]:
    """Where in time the slow requests fell: spread over the run (the stack's own queueing)
    or bunched into a few seconds (a stall: the host, a refresh, a pause). Counts requests
    over `slow_ms`, the 1-second windows they fall into, and the share of them in the worst
    window."""
    start = min(t for t, _ in timeline)
    slow = [int(t - start) for t, lat in timeline if lat * 1000 > slow_ms]
    per_second: dict[int, int] = {}
    for sec in slow:
        per_second[sec] = per_second.get(sec, 0) + 1
    worst = max(per_second.values(), default=0)
    return {
        "slow_ms": slow_ms,
        "slow_requests": len(slow),
        "slow_seconds": sorted(per_second),
        "slow_share_in_worst_second": worst / len(slow) if slow else 0.0,
    }


def machine_cpu_seconds() -> dict[str, float]:
    """Softirq and steal CPU seconds of the machine so far, from /proc/stat (Linux): softirq
    is mostly the kernel's loopback network work for our own traffic, which no process is
    charged for; steal is time the hypervisor gave to other guests."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    tick = os.sysconf("SC_CLK_TCK")
    return {"softirq": fields[6] / tick, "steal": fields[7] / tick}


def process_table() -> dict[int, tuple[int, float]]:
    """pid -> (parent pid, CPU seconds so far) of every process on the machine, kernel
    threads included, read the same way as our own processes' so that differences between
    two tables are comparable; /proc/stat's busy total is tick-sampled on this VM and
    disagreed with the per-process sums by up to 1.5 ms per request."""
    tick = os.sysconf("SC_CLK_TCK")
    out = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with suppress(OSError, ValueError, IndexError):
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                out[int(entry.name)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / tick)
    return out


def descendants_cpu_seconds(table: dict[int, tuple[int, float]], roots: list[int]) -> float:
    """CPU seconds of every process below `roots` that the benchmark does not track itself
    (e.g. the Milvus Lite server that retrieval starts), so it is not counted as "other"."""
    found, frontier = set(), set(roots)
    while frontier:
        frontier = {pid for pid, (ppid, _) in table.items() if ppid in frontier} - found
        found |= frontier
    return sum(table[pid][1] for pid in found - set(roots))


Caller = Callable[[int], Any]  # request index -> future


def make_caller(
    target: str, kind: str, users: list[tuple[str, list[str]]], timeout: float
) -> tuple[Caller, Any]:
    channel = grpc.insecure_channel(target)
    if kind == "echo":
        call = channel.unary_unary(ECHO_METHOD)
        payload = b"x" * 64
        return (lambda i: call.future(payload, timeout=timeout)), channel
    stub = recommend_pb2_grpc.RecommendServiceStub(channel)
    reqs = [recommend_pb2.RecommendRequest(user_id=u, history_ids=h[-50:], k=10) for u, h in users]
    return (lambda i: stub.Recommend.future(reqs[i % len(reqs)], timeout=timeout)), channel


def _record(result: Result, lock: threading.Lock, fut: Any, started: float) -> None:
    elapsed = time.perf_counter() - started
    with lock:
        try:
            resp = fut.result()
        except grpc.RpcError:
            result.errors += 1
            return
        result.latencies.append(elapsed)
        result.timeline.append((started, elapsed))
        if isinstance(resp, recommend_pb2.RecommendResponse):
            result.degraded += int(resp.degraded)
            for s in resp.stage_latencies:
                result.stages.setdefault(s.stage, []).append(s.seconds)


def closed_loop(caller: Caller, concurrency: int, seconds: float) -> Result:
    result, lock = Result(), threading.Lock()
    stop_at = time.perf_counter() + seconds
    counter = iter(range(10**9))

    def worker() -> None:
        while time.perf_counter() < stop_at:
            t0 = time.perf_counter()
            fut = caller(next(counter))
            with suppress(grpc.RpcError):
                fut.result()
            _record(result, lock, fut, t0)

    start = time.perf_counter()
    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    result.timeline.clear()  # send times only mean something in the open loop
    result.seconds = time.perf_counter() - start
    return result


def open_loop(caller: Caller, rate: float, seconds: float) -> Result:
    """Send at fixed times t0 + i/rate whatever the server does; latency from the scheduled time."""
    result, lock = Result(), threading.Lock()
    n = int(rate * seconds)
    start = time.perf_counter()
    pending = []
    for i in range(n):
        scheduled = start + i / rate
        delay = scheduled - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        fut = caller(i)
        fut.add_done_callback(lambda f, s=scheduled: _record(result, lock, f, s))
        pending.append(fut)
    for fut in pending:
        with suppress(grpc.RpcError, futures.CancelledError):
            fut.result()
    result.seconds = time.perf_counter() - start
    return result


def run_target(
    name: str,
    target: str,
    kind: str,
    users: list[tuple[str, list[str]]],
    args: argparse.Namespace,
    procs: Procs,
) -> dict[str, Any]:
    caller, channel = make_caller(target, kind, users, timeout=1.0)
    out: dict[str, Any] = {"target": name}
    try:
        closed_loop(caller, 1, min(2.0, args.closed_seconds))  # warm up (and fill the cache)
        out["closed"] = {}
        for c in args.concurrency:
            out["closed"][str(c)] = closed_loop(caller, c, args.closed_seconds).summary()
            print(f"{name:6s} closed c={c:<3d} {fmt(out['closed'][str(c)])}", flush=True)
        roots = [p.pid for p in procs.procs]
        cpu0, machine0, table0 = procs.cpu_seconds(), machine_cpu_seconds(), process_table()
        opened = open_loop(caller, args.rate, args.duration)
        cpu1, machine1, table1 = procs.cpu_seconds(), machine_cpu_seconds(), process_table()
        below0, below1 = descendants_cpu_seconds(table0, roots), descendants_cpu_seconds(table1, roots)
        out["open"] = opened.summary()
        timeline = sorted(opened.timeline)
        t0 = timeline[0][0] if timeline else 0.0
        out["open_timeline"] = [[round(t - t0, 3), round(lat * 1000, 2)] for t, lat in timeline]
        # Where the CPU goes: per process, milliseconds of CPU per request of the open loop;
        # "other" is what the rest of the machine burnt meanwhile (nothing should run), and
        # "steal" what the hypervisor gave to other guests: a run with either is a noisy run.
        n = max(out["open"]["requests"], 1)
        cpu = {k: round((cpu1[k] - cpu0[k]) * 1000 / n, 3) for k in cpu1 if k in cpu0}
        cpu["children of services"] = round((below1 - below0) * 1000 / n, 3)
        ours = sum(cpu.values()) * n / 1000
        out["open"]["cpu_ms_per_request"] = cpu
        machine = {k: (machine1[k] - machine0[k]) * 1000 / n for k in machine1}
        everything = sum(t - table0.get(pid, (0, 0.0))[1] for pid, (_, t) in table1.items())
        out["open"]["machine"] = {
            "other_cpu_ms_per_request": round((everything - ours) * 1000 / n, 3),
            "softirq_ms_per_request": round(machine["softirq"], 3),
            "steal_ms_per_request": round(machine["steal"], 3),
        }
        print(f"{name:6s} open {args.rate:.0f} rps {fmt(out['open'])}", flush=True)
        print(f"{name:6s} CPU ms/request: " + ", ".join(f"{k} {v:.2f}" for k, v in cpu.items()), flush=True)
        o, m = out["open"], out["open"]["machine"]
        print(
            f"{name:6s} slow (>{SLOW_MS:.0f} ms): {o['slow_requests']} requests in {len(o['slow_seconds'])} "
            f"of {args.duration:.0f} seconds ({o['slow_share_in_worst_second']:.0%} in the worst one); "
            f"machine: other {m['other_cpu_ms_per_request']:.2f} ms/request, "
            f"softirq {m['softirq_ms_per_request']:.2f}, steal {m['steal_ms_per_request']:.2f}",
            flush=True,
        )
    finally:
        channel.close()
    return out


def fmt(s: dict[str, Any]) -> str:
    return (
        f"rps {s['rps']:7.1f}  p50 {s['p50_ms']:6.2f} ms  p95 {s['p95_ms']:6.2f} ms  "
        f"p99 {s['p99_ms']:6.2f} ms  errors {s['errors']}  degraded {s['degraded']}"
    )


# ---------------------------------------------------------------- report
def plot(results: list[dict[str, Any]], out_dir: Path, rate: float) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for i, r in enumerate(results):
        cs = sorted(int(c) for c in r["closed"])
        color = f"C{i}"
        p99 = [r["closed"][str(c)]["p99_ms"] for c in cs]
        p50 = [r["closed"][str(c)]["p50_ms"] for c in cs]
        axes[0].plot(cs, p99, marker="o", color=color, label=f"{r['target']} p99")
        axes[0].plot(cs, p50, marker=".", ls="--", color=color, label=f"{r['target']} p50")
        axes[1].plot(cs, [r["closed"][str(c)]["rps"] for c in cs], marker="o", color=color, label=r["target"])
    for ax in axes:
        ax.set_xscale("log", base=2)
        ax.set_xticks(cs, [str(c) for c in cs])
    axes[0].set(yscale="log", xlabel="concurrency (closed loop)", ylabel="ms", title="Latency")
    axes[1].set(xlabel="concurrency (closed loop)", ylabel="requests/s", title="Throughput")
    for ax in axes:
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    paths.append(out_dir / "serve_closed_loop.png")
    fig.savefig(paths[-1], dpi=110)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(7, 4))
    names = [r["target"] for r in results]
    x = np.arange(len(names))
    for j, q in enumerate(("p50_ms", "p95_ms", "p99_ms")):
        ax.bar(x + (j - 1) * 0.25, [r["open"][q] for r in results], 0.25, label=q.replace("_ms", ""))
    ax.axhline(30, color="red", ls=":", label="p99 goal 30 ms")
    ax.set(xticks=x, xticklabels=names, ylabel="latency ms", title=f"Open loop at {rate:.0f} RPS")
    ax.legend()
    fig.tight_layout()
    paths.append(out_dir / "serve_open_loop.png")
    fig.savefig(paths[-1], dpi=110)
    plt.close(fig)

    timed = [r for r in results if r.get("open_timeline")]
    if timed:
        height = 1.8 * len(timed) + 0.6
        fig, axes = plt.subplots(len(timed), 1, figsize=(9, height), sharex=True, squeeze=False)
        for ax, r in zip(axes[:, 0], timed, strict=True):
            t, lat = np.array(r["open_timeline"]).T
            ax.scatter(t, lat, s=2, alpha=0.5, color="C0")
            ax.axhline(SLOW_MS, color="red", ls=":", lw=1)
            ax.set(yscale="log", ylabel="ms", title=f"{r['target']}: every request of the open loop")
            ax.title.set_size(9)
        axes[-1, 0].set(xlabel="seconds into the open loop")
        fig.tight_layout()
        paths.append(out_dir / "serve_timeline.png")
        fig.savefig(paths[-1], dpi=110)
        plt.close(fig)

    staged = [r for r in results if "stages_p50_ms" in r["open"]]
    if staged:
        fig, ax = plt.subplots(figsize=(7, 4))
        stages = ["encode_user", "retrieve", "rank", "total"]
        x = np.arange(len(stages))
        for j, r in enumerate(staged):
            vals = [r["open"]["stages_p99_ms"].get(s, 0) for s in stages]
            ax.bar(x + j * 0.8 / len(staged), vals, 0.8 / len(staged), label=f"{r['target']} p99")
        ax.set(
            xticks=x + 0.4 - 0.4 / len(staged),
            xticklabels=stages,
            ylabel="ms",
            title="Gateway stage p99 (open loop)",
        )
        ax.legend()
        fig.tight_layout()
        paths.append(out_dir / "serve_stages.png")
        fig.savefig(paths[-1], dpi=110)
        plt.close(fig)
    return paths


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--serving", type=Path, help="serving artifact dir (RUN/serving)")
    p.add_argument("--news", type=Path, action="append", default=[], help="news.tsv with titles (repeatable)")
    p.add_argument("--behaviors", type=Path, help="behaviors.tsv to draw users and histories from")
    p.add_argument("--modes", default="split,all", help="comma list of split, all")
    p.add_argument("--concurrency", default="1,4,16")
    p.add_argument("--closed-seconds", type=float, default=10.0)
    p.add_argument("--rate", type=float, default=100.0)
    p.add_argument("--duration", type=float, default=60.0)
    p.add_argument("--users", type=int, default=2000)
    p.add_argument("--backend-host", default=BACKEND_HOST, help="host in the gateway's backend addresses")
    p.add_argument("--label", default="", help="free text saved with the figures (e.g. data size)")
    p.add_argument("--out", type=Path, default=ROOT / "bench/out/serve_load.json")
    p.add_argument("--img-dir", type=Path, default=ROOT / "docs/img")
    p.add_argument("--replot", type=Path, help="only redraw the PNGs from a saved JSON report")
    p.add_argument("--echo-server", type=int, help=argparse.SUPPRESS)
    p.add_argument("--echo-server-aio", type=int, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.echo_server:
        echo_server(args.echo_server)
        return
    if args.echo_server_aio:
        echo_server_aio(args.echo_server_aio)
        return
    if args.replot:
        saved = json.loads(args.replot.read_text())
        args.img_dir.mkdir(parents=True, exist_ok=True)
        for path in plot(saved["results"], args.img_dir, float(saved["args"]["rate"])):
            print(f"wrote {path}")
        return
    args.concurrency = [int(c) for c in args.concurrency.split(",")]
    modes = [m for m in args.modes.split(",") if m]
    if modes and (args.serving is None or args.behaviors is None):
        p.error("--serving and --behaviors are needed for the split/all modes")
    if "split" in modes and shutil.which("redis-server") is None:
        p.error("split mode needs redis-server on PATH")
    users = load_users(args.behaviors, args.users) if modes else []
    procs = Procs()
    results = []
    with tempfile.TemporaryDirectory(prefix="serve_load_") as tmp:
        work = Path(tmp)
        try:
            for flavour, flag in (("echo", "--echo-server"), ("echo-aio", "--echo-server-aio")):
                echo_port = free_port()
                procs.start([sys.executable, __file__, flag, str(echo_port)], work / f"{flavour}.log")
                wait_port(echo_port)
                results.append(run_target(flavour, f"127.0.0.1:{echo_port}", "echo", users, args, procs))
                procs.stop_all()
            for mode in modes:
                stack = split_stack if mode == "split" else all_stack
                t0 = time.perf_counter()
                with stack(args, work, procs) as port:
                    print(f"{mode}: serving after {time.perf_counter() - t0:.1f}s", flush=True)
                    results.append(run_target(mode, f"127.0.0.1:{port}", "recommend", users, args, procs))
                procs.stop_all()
        finally:
            procs.stop_all()
            for log in sorted(work.glob("*.log")):
                text = log.read_text(errors="replace")
                if "Traceback" in text:
                    print(f"--- {log.name} (has a traceback)\n{text[-3000:]}", file=sys.stderr)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.img_dir.mkdir(parents=True, exist_ok=True)
    report = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "label": args.label,
        "cpus": os.cpu_count(),
        "args": {k: str(v) for k, v in vars(args).items()},
        "results": results,
    }
    args.out.write_text(json.dumps(report, indent=2))
    for path in plot(results, args.img_dir, args.rate):
        print(f"wrote {path}")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
