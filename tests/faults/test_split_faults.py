"""Faults against the split-mode stack (one `serve --service NAME` process per service, a
private redis-server with a password): kill -9, SIGSTOP and SIGTERM of Redis, the ranker and
retrieval under load. Every answer is personalised or degraded with the fault's reason,
service recovers after the restart, and no client sees an error.

Each scenario runs twice: variant `a` unpinned (services serve the registry's CURRENT) and
pinned to registry version v1 (the chart's shape). The pinned shape is the regression test
of issue 15 defect 1 (the split user-encoder/ranker did not take the registry version, so
every cache miss was a fallback): `PinnedVariantBug` names that failure if it comes back."""

from __future__ import annotations

import signal
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from fault_load import MATRICES, Answer, Load, check_answers, run_load, wait_clean
from fault_stack import GATEWAYS, FaultStack


class PinnedVariantBug(AssertionError):
    """The pinned gateway answers fallbacks because its encoder rejects the registry version."""


@pytest.fixture(params=["unpinned", "pinned"])
def shape(request: pytest.FixtureRequest) -> str:
    """Which gateway the scenario talks to: variant `a` unpinned, or pinned to v1."""
    return str(request.param)


_BROKEN: dict[str, str] = {}


def _ready(fault_stack: FaultStack, shape: str, users: list[tuple[str, list[str]]]) -> None:
    """Wait for personalised answers; on the pinned gateway, a known-bug verdict instead."""
    if shape in _BROKEN:
        raise PinnedVariantBug(_BROKEN[shape])
    try:
        wait_clean(fault_stack, shape, users, timeout=10 if shape == "pinned" else 30)
    except AssertionError as exc:
        log = fault_stack.procs[GATEWAYS[shape]].log.read_text()
        if shape == "pinned" and "this server serves" in log:
            line = next(x for x in log.splitlines() if "this server serves" in x)
            _BROKEN[shape] = f"{exc}; {line[-200:]}"
            raise PinnedVariantBug(_BROKEN[shape]) from None
        raise


def _after_recovery(fault_stack: FaultStack, shape: str, users: list[tuple[str, list[str]]]) -> None:
    answers = run_load(fault_stack, shape, users, 1.0)
    counts = check_answers(answers, allowed=set())
    assert counts["personalised"] == len(answers)


def test_personalised_after_a_redis_flush(
    fault_stack: FaultStack, shape: str, fault_users: list[tuple[str, list[str]]]
) -> None:
    """Every cache miss computes the user vector: no fallback once Redis is empty."""
    _ready(fault_stack, shape, fault_users)
    fault_stack.redis("FLUSHALL")
    answers = run_load(fault_stack, shape, fault_users, 2.0)
    counts = check_answers(answers, allowed=set())
    if counts["personalised"] != len(answers):
        raise PinnedVariantBug(str(counts))


@pytest.mark.parametrize("how", ["kill9", "sigstop"])
def test_redis_down_or_frozen(
    fault_stack: FaultStack, shape: str, fault_users: list[tuple[str, list[str]]], how: str
) -> None:
    _ready(fault_stack, shape, fault_users)
    redis = fault_stack.procs["redis"]
    if how == "kill9":
        redis.kill()
    else:
        redis.signal(signal.SIGSTOP)
    try:
        answers = run_load(fault_stack, shape, fault_users, 3.0)
    finally:
        if how == "kill9":
            fault_stack.restart("redis")
        else:
            redis.signal(signal.SIGCONT)
    counts = check_answers(answers, allowed={"cache_unavailable"})
    assert counts["cache_unavailable"] > 0, counts  # the encoders noticed, and said so
    assert wait_clean(fault_stack, shape, fault_users, timeout=10) < 10
    _after_recovery(fault_stack, shape, fault_users)


@pytest.mark.parametrize(
    ("service", "reason"), [("ranker", "ranker_unavailable"), ("retrieval", "retrieval_unavailable")]
)
def test_backend_killed_then_restarted(
    fault_stack: FaultStack, shape: str, fault_users: list[tuple[str, list[str]]], service: str, reason: str
) -> None:
    _ready(fault_stack, shape, fault_users)
    fault_stack.procs[service].kill()
    load = Load(fault_stack, shape, fault_users, rps=20).start()
    time.sleep(2.0)
    t_restart = time.monotonic()
    fault_stack.restart(service, wait=True)
    answers = load.stop()
    counts = check_answers(answers, allowed={reason})
    assert counts[reason] > 0, counts
    down = [a for a in answers if a.sent < t_restart]
    assert all(a.degraded for a in down[5:]), Counter(a.kind for a in down)  # the fallback, named
    wait_clean(fault_stack, shape, fault_users, timeout=15)
    _after_recovery(fault_stack, shape, fault_users)


def test_ranker_sigterm_drains_and_exits_zero(
    fault_stack: FaultStack, shape: str, fault_users: list[tuple[str, list[str]]]
) -> None:
    _ready(fault_stack, shape, fault_users)
    ranker = fault_stack.procs["ranker"]
    load = Load(fault_stack, shape, fault_users, rps=20).start()
    time.sleep(0.5)
    ranker.signal(signal.SIGTERM)
    assert ranker.popen is not None
    code = ranker.popen.wait(15)
    time.sleep(0.5)
    answers = load.stop()
    assert code == 0, ranker.log.read_text()[-2000:]
    check_answers(answers, allowed={"ranker_unavailable"})
    fault_stack.restart("ranker", wait=True)
    wait_clean(fault_stack, shape, fault_users, timeout=15)


# -- the soak ------------------------------------------------------------------------------------

FAULTS = ("redis", "ranker", "retrieval", "redis", "ranker", "retrieval")
REASON = {"redis": "cache_unavailable", "ranker": "ranker_unavailable", "retrieval": "retrieval_unavailable"}


@pytest.mark.slow
def test_soak_100rps_with_a_fault_every_10s(
    fault_stack: FaultStack, shape: str, fault_users: list[tuple[str, list[str]]], tmp_path: Path
) -> None:
    """60 s at 100 RPS; every 10 s one of Redis, ranker, retrieval is killed (-9) and restarted
    2 s later. 0 errors, every answer personalised or degraded with a reason, each fault
    recovered; the fault matrix is printed at the end of the session."""
    _ready(fault_stack, shape, fault_users)  # the pinned gateway: PinnedVariantBug today
    if shape == "pinned":
        pytest.skip("the soak runs on the unpinned gateway only (suite time budget)")
    load = Load(fault_stack, shape, fault_users, rps=100).start()
    t0 = time.monotonic()
    events: list[Event] = []
    for i, name in enumerate(FAULTS):
        _sleep_until(t0 + 10 * (i + 1) - 8)  # faults at 2, 12, 22, 32, 42, 52 s
        killed = time.monotonic()
        fault_stack.procs[name].kill()
        _sleep_until(killed + 2)
        event = Event(name, killed, time.monotonic())
        fault_stack.procs[name].start()  # no wait: the load keeps going while it loads
        event.watch(fault_stack)
        events.append(event)
    _sleep_until(t0 + 60)
    for event in events:  # keep the load on until every restart has served (at most 45 s more)
        event.done.wait(max(0.0, t0 + 105 - time.monotonic()))
    recovered = _wait_personalised(load, seconds=1.0, timeout=40)
    answers = load.stop()
    rows = _matrix(answers, events, t0)
    path = tmp_path / "fault_matrix.md"
    path.write_text(_format(rows, len(answers), time.monotonic() - t0))
    MATRICES.append(("fault matrix: 60 s soak, 100 RPS, split mode", path))
    check_answers(answers, allowed=set(REASON.values()) | {"user_encoder_unavailable"})
    last = {e.name: e for e in events}
    for event in events:
        # a restart is a process start (imports, model load, index mirror): 5-28 s on a loaded
        # 2-core box, so a restart may still be loading when the next fault kills it again
        if event is last[event.name] or not event.interrupted:
            assert event.serving_s is not None and event.serving_s < 45, (event.name, event.serving_s)
    assert recovered, "answers not all personalised again after the last restart"
    assert len(answers) >= 5400, len(answers)  # the rate held (100 RPS, 60 s)


def _wait_personalised(load: Load, seconds: float, timeout: float) -> bool:
    """Wait until the last `seconds` of answered requests were all personalised."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        time.sleep(0.5)
        now = time.monotonic()
        recent = [a for a in list(load.answers) if now - 2.5 - seconds <= a.sent < now - 2.0]
        if len(recent) >= 50 and all(a.done and a.kind == "personalised" for a in recent):
            return True
    return False


@dataclass
class Event:
    """One fault: which process, when it was killed and restarted, when it served again."""

    name: str
    killed: float
    restarted: float
    serving_s: float | None = None  # restart -> SERVING (services) or PONG (Redis)
    interrupted: bool = False  # killed again (the next fault) before it was ready
    done: threading.Event = field(default_factory=threading.Event)

    def watch(self, stack: FaultStack) -> None:
        def run() -> None:
            try:
                if self.name == "redis":
                    stack.wait_redis(60)
                else:
                    stack.wait_serving(self.name, 60)
                self.serving_s = time.monotonic() - self.restarted
            except (AssertionError, TimeoutError):
                # exited: killed again by the next fault while still loading; or timed out
                self.interrupted = not stack.procs[self.name].alive()
            finally:
                self.done.set()

        threading.Thread(target=run, daemon=True).start()


def _sleep_until(t: float) -> None:
    time.sleep(max(0.0, t - time.monotonic()))


def _matrix(answers: list[Answer], events: list[Event], t0: float) -> list[dict]:
    """One row per window: before the first fault, then from each kill to the next kill."""
    rows = []
    starts = [
        ("none (warm)", t0, None),
        *((f"{e.name} kill -9 at {e.killed - t0:4.1f} s", e.killed, e) for e in events),
    ]
    for i, (label, start, event) in enumerate(starts):
        end = starts[i + 1][1] if i + 1 < len(starts) else float("inf")
        window = [a for a in answers if start <= a.sent < end]
        rows.append(
            {
                "fault": label,
                "requests": len(window),
                "personalised": sum(1 for a in window if a.kind == "personalised"),
                "degraded": dict(Counter(r for a in window for r in a.reasons)),
                "errors": sum(1 for a in window if a.error),
                "recovery": "-" if event is None else _recovery_text(event),
                "personalised_after": "-" if event is None else _first_personalised(answers, event, end),
            }
        )
    return rows


def _first_personalised(answers: list[Answer], event: Event, end: float) -> str:
    """Seconds from ready to the first personalised answer (the gateway's reconnect), or why not."""
    if event.serving_s is None:
        return "-"
    ready = event.restarted + event.serving_s
    first = next(
        (
            a.sent
            for a in sorted(answers, key=lambda a: a.sent)
            if a.sent >= ready and a.kind == "personalised"
        ),
        None,
    )
    if first is None:
        return "none"
    return f"{first - ready:.1f} s" + (" (after the next fault)" if first >= end else "")


def _recovery_text(event: Event) -> str:
    if event.serving_s is None:
        return "killed again while loading" if event.interrupted else "never"
    what = "PONG" if event.name == "redis" else "SERVING"
    return f"{event.serving_s:.1f} s to {what}"


def _format(rows: list[dict], total: int, seconds: float) -> str:
    lines = [
        "| fault | requests | personalised | degraded by reason | errors | restart -> ready "
        "| ready -> personalised |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        reasons = ", ".join(f"{k} {v}" for k, v in sorted(r["degraded"].items())) or "-"
        rec = r["recovery"]
        lines.append(
            f"| {r['fault']} | {r['requests']} | {r['personalised']} | {reasons} | {r['errors']} | {rec} "
            f"| {r['personalised_after']} |"
        )
    lines.append(f"\n{total} requests in {seconds:.0f} s; each service restarted 2 s after its kill")
    return "\n".join(lines) + "\n"
