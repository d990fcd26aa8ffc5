"""Open-loop Recommend load against a FaultStack's gateway, and the fault matrix."""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from fault_stack import FaultStack

from services.generated.newsrec.v1 import recommend_pb2, recommend_pb2_grpc

# (title, file) of the fault matrices the tests wrote; conftest prints them at the end of the
# session (a plain module, not conftest: `from conftest import` may find another conftest)
MATRICES: list[tuple[str, Path]] = []


@dataclass
class Answer:
    sent: float  # monotonic send time
    degraded: bool = False
    reasons: tuple[str, ...] = ()
    items: int = 0
    error: str | None = None
    done: bool = False  # answered (or failed)

    @property
    def kind(self) -> str:
        if self.error:
            return "error"
        return "degraded" if self.degraded else "personalised"


@dataclass
class Load:
    """Send Recommend at `rps` (futures, so a slow answer never slows the sending) until stopped."""

    stack: FaultStack
    shape: str  # which gateway: "unpinned" | "pinned"
    users: list[tuple[str, list[str]]]
    rps: float
    deadline_s: float = 2.0
    answers: list[Answer] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _pending: list[threading.Event] = field(default_factory=list)

    def start(self) -> Load:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        stub = recommend_pb2_grpc.RecommendServiceStub(self.stack.channels[self.shape])
        t0, i = time.monotonic(), 0
        while not self._stop.is_set():
            due = t0 + i / self.rps
            now = time.monotonic()
            if due > now:
                time.sleep(due - now)
            user, history = self.users[i % len(self.users)]
            answer = Answer(time.monotonic())
            self.answers.append(answer)
            done = threading.Event()
            self._pending.append(done)
            future = stub.Recommend.future(
                recommend_pb2.RecommendRequest(user_id=user, history_ids=history, k=5),
                timeout=self.deadline_s,
            )
            future.add_done_callback(lambda f, a=answer, d=done: _record(f, a, d))
            i += 1

    def stop(self) -> list[Answer]:
        self._stop.set()
        assert self._thread is not None
        self._thread.join(10)
        for done in self._pending:
            done.wait(self.deadline_s + 5)
        return self.answers


def _record(future: grpc.Future, answer: Answer, done: threading.Event) -> None:
    try:
        resp = future.result()
        answer.degraded, answer.reasons, answer.items = (
            resp.degraded,
            tuple(resp.degraded_reasons),
            len(resp.items),
        )
    except grpc.RpcError as exc:
        answer.error = f"{exc.code().name}: {exc.details()}"
    answer.done = True
    done.set()


def run_load(
    stack: FaultStack, shape: str, users: list[tuple[str, list[str]]], seconds: float, rps: float = 20
) -> list[Answer]:
    load = Load(stack, shape, users, rps).start()
    time.sleep(seconds)
    return load.stop()


def check_answers(answers: list[Answer], allowed: set[str]) -> Counter[str]:
    """0 errors; every answer has items and is personalised or degraded with allowed reasons."""
    assert all(a.done for a in answers), "some requests never completed"
    errors = [a.error for a in answers if a.error]
    assert not errors, f"{len(errors)} errors of {len(answers)}: {Counter(errors).most_common(3)}"
    counts: Counter[str] = Counter()
    for a in answers:
        assert a.items > 0, a
        if a.degraded:
            assert a.reasons and set(a.reasons) <= allowed, (a.reasons, allowed)
            counts.update(a.reasons)
        else:
            assert not a.reasons, a
            counts["personalised"] += 1
    return counts


def wait_clean(
    stack: FaultStack, shape: str, users: list[tuple[str, list[str]]], timeout: float = 30
) -> float:
    """Seconds until 5 answers in a row are personalised (not degraded)."""
    t0, streak, i = time.monotonic(), 0, 0
    while time.monotonic() - t0 < timeout:
        user, history = users[i % len(users)]
        i += 1
        try:
            resp = stack.recommend(shape, user, history)
            streak = 0 if resp.degraded else streak + 1
        except grpc.RpcError:
            streak = 0
        if streak >= 5:
            return time.monotonic() - t0
        time.sleep(0.05)
    raise AssertionError(f"answers not personalised again after {timeout}s")
