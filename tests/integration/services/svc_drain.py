"""SIGTERM a serving gateway process under 32 concurrent Recommend loops and record what
every call and every health check saw (issue 15 defect 5).

The clients behave like a load balancer that health-checks the server: they keep sending
until `LB_DELAY_S` after health first says NOT_SERVING (the time an endpoint removal takes
to propagate), then stop. A client that ignores health and still sends when the port
closes can see CANCELLED for calls the server had received but not started: grpc core
cancels those at shutdown, which no server-side code can prevent."""

from __future__ import annotations

import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from services.generated.newsrec.v1 import recommend_pb2, recommend_pb2_grpc

CLIENTS = 32
LB_DELAY_S = 0.5


@dataclass
class DrainReport:
    sigterm_at: float = 0.0
    exited_at: float = 0.0
    # (start, end, status code name) of every Recommend call
    calls: list[tuple[float, float, str]] = field(default_factory=list)
    # (time, "SERVING" | "NOT_SERVING" | an error code name) of every health check
    health: list[tuple[float, str]] = field(default_factory=list)

    def codes(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for _s, _e, code in self.calls:
            out[code] = out.get(code, 0) + 1
        return out

    def not_serving_span(self) -> float:
        """Seconds between the first and last NOT_SERVING seen."""
        times = [t for t, status in self.health if status == "NOT_SERVING"]
        return times[-1] - times[0] if times else 0.0


def drain_probe(
    port: int, proc: subprocess.Popen[str], users: list[tuple[str, list[str]]], load_s: float = 1.0
) -> DrainReport:
    """32 closed-loop Recommend clients; SIGTERM after `load_s`; run until the process exits."""
    report = DrainReport()
    done = threading.Event()
    lb_gone = threading.Event()  # the load balancer has taken this server out
    lock = threading.Lock()
    target = f"127.0.0.1:{port}"

    def client(i: int) -> None:
        with grpc.insecure_channel(target) as ch:
            stub = recommend_pb2_grpc.RecommendServiceStub(ch)
            n = 0
            while not done.is_set() and not lb_gone.is_set():
                user, history = users[(i + n * CLIENTS) % len(users)]
                n += 1
                start = time.monotonic()
                try:
                    stub.Recommend(
                        recommend_pb2.RecommendRequest(user_id=user, history_ids=history, k=5), timeout=10
                    )
                    code = "OK"
                except grpc.RpcError as exc:
                    code = exc.code().name
                with lock:
                    report.calls.append((start, time.monotonic(), code))
                if code != "OK":
                    time.sleep(0.02)  # the port is closed: do not spin

    def health() -> None:
        timer: threading.Timer | None = None
        with grpc.insecure_channel(target) as ch:
            stub = health_pb2_grpc.HealthStub(ch)
            while not done.is_set():
                try:
                    status = stub.Check(health_pb2.HealthCheckRequest(), timeout=1).status
                    name = health_pb2.HealthCheckResponse.ServingStatus.Name(status)
                except grpc.RpcError as exc:
                    name = exc.code().name
                now = time.monotonic()
                report.health.append((now, name))
                if name == "NOT_SERVING" and timer is None:
                    timer = threading.Timer(LB_DELAY_S, lb_gone.set)
                    timer.start()
                time.sleep(0.05)

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(CLIENTS)]
    threads.append(threading.Thread(target=health, daemon=True))
    for t in threads:
        t.start()
    time.sleep(load_s)
    report.sigterm_at = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(60)
    finally:
        report.exited_at = time.monotonic()
        time.sleep(0.3)  # a few calls against the closed port
        done.set()
        for t in threads:
            t.join(15)
    return report


def check_drain(report: DrainReport, drain_s: float) -> None:
    """What a load balancer needs: nothing CANCELLED; every call started before the drain
    ended answered; NOT_SERVING visible for (most of) the drain window."""
    codes = report.codes()
    assert set(codes) == {"OK"}, codes  # nothing CANCELLED, nothing refused
    in_flight = [c for c in report.calls if c[0] <= report.sigterm_at <= c[1]]
    assert len(in_flight) >= 16, (len(in_flight), codes)  # the clients really were busy
    assert max(c[0] for c in report.calls) > report.sigterm_at + 0.3  # and kept sending
    first_not_serving = min((t for t, s in report.health if s == "NOT_SERVING"), default=None)
    assert first_not_serving is not None and first_not_serving - report.sigterm_at < 0.5, report.health[-10:]
    assert report.not_serving_span() >= 0.6 * drain_s, report.not_serving_span()
