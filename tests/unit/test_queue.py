"""The work queue keeps client-go's promises: dedupe, one worker per key, back-off, forget. Time is a fake."""

from __future__ import annotations

import threading

import pytest

from suanli.controller.queue import ShutDown, WorkQueue


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_key_is_queued_once_however_many_events_arrive() -> None:
    q: WorkQueue[str] = WorkQueue()
    for _ in range(5):
        q.add("a")
    q.add("b")
    assert len(q) == 2
    assert q.get(timeout=0) == "a" and q.get(timeout=0) == "b" and q.get(timeout=0) is None


def test_a_key_in_process_is_not_handed_out_again_until_done() -> None:
    q: WorkQueue[str] = WorkQueue()
    q.add("a")
    assert q.get(timeout=0) == "a"
    q.add("a")  # an event while a worker has it
    assert q.get(timeout=0) is None, "no second worker on the same job"
    q.done("a")
    assert q.get(timeout=0) == "a", "re-queued after done, so the newest state is seen"


def test_rate_limited_retries_back_off_exponentially_and_forget_resets() -> None:
    clock = Clock()
    q: WorkQueue[str] = WorkQueue(base_delay=1.0, max_delay=8.0, clock=clock)
    delays = [q.add_rate_limited("a") for _ in range(5)]
    assert delays == [1.0, 2.0, 4.0, 8.0, 8.0]
    assert q.get(timeout=0) is None, "not before its delay"
    clock.now = 1.0
    assert q.get(timeout=0) == "a"
    q.done("a")
    q.forget("a")
    assert q.failures("a") == 0 and q.add_rate_limited("a") == 1.0


def test_add_after_delivers_when_due() -> None:
    clock = Clock()
    q: WorkQueue[str] = WorkQueue(clock=clock)
    q.add_after("a", 5.0)
    clock.now = 4.9
    assert q.get(timeout=0) is None
    clock.now = 5.0
    assert q.get(timeout=0) == "a"


def test_shut_down_wakes_waiting_workers() -> None:
    q: WorkQueue[str] = WorkQueue()
    raised = threading.Event()

    def worker() -> None:
        with pytest.raises(ShutDown):
            q.get()
        raised.set()

    thread = threading.Thread(target=worker)
    thread.start()
    q.shut_down()
    thread.join(timeout=5)
    assert raised.is_set()
    q.add("late")
    with pytest.raises(ShutDown):
        q.get(timeout=0)
