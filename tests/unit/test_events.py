"""The event recorder: events never delay a gang, and a shutdown sends what is queued (within a bound)."""

from __future__ import annotations

import threading
import time
from typing import Any

from suanli.api import parse_job
from suanli.controller.status import EventRecorder

JOB = parse_job({
    "apiVersion": "suanli.io/v1alpha1", "kind": "AITrainingJob",
    "metadata": {"name": "gang", "namespace": "team-a", "uid": "u-1"},
    "spec": {"replicas": 1, "acceleratorsPerReplica": 1, "candidates": [{"vendor": "nvidia", "image": "img"}]},
})


class SlowKube:
    """Answers each create after `delay` seconds; `hang` makes every create wait until released."""

    def __init__(self, delay: float = 0.0, hang: bool = False) -> None:
        self.delay = delay
        self.created: list[str] = []
        self.release = threading.Event()
        if not hang:
            self.release.set()

    def create(self, ns: str, plural: str, body: dict[str, Any]) -> dict[str, Any]:
        self.release.wait()
        time.sleep(self.delay)
        self.created.append(body["reason"])
        return body


def test_stop_sends_the_events_still_queued() -> None:
    kube = SlowKube(delay=0.002)
    recorder = EventRecorder(kube)  # type: ignore[arg-type]
    recorder.start()
    for i in range(100):
        recorder.record(JOB, "Normal", "Running", f"gang {i} bound")
    recorder.stop(timeout=10)
    assert len(kube.created) == 100, "a shutdown right after a burst of binds loses none of their events"


def test_stop_gives_up_on_a_hung_api_server_within_its_bound() -> None:
    kube = SlowKube(hang=True)
    recorder = EventRecorder(kube)  # type: ignore[arg-type]
    recorder.start()
    for _ in range(5):
        recorder.record(JOB, "Normal", "Running", "bound")
    t0 = time.monotonic()
    recorder.stop(timeout=0.3)
    assert time.monotonic() - t0 < 2, "the operator's shutdown is not held by an API server that does not answer"
    kube.release.set()


def test_a_full_queue_drops_events_instead_of_blocking_the_caller() -> None:
    recorder = EventRecorder(SlowKube(), capacity=3)  # type: ignore[arg-type]  # thread not started
    t0 = time.monotonic()
    for _ in range(10):
        recorder.record(JOB, "Normal", "Running", "bound")
    assert recorder.dropped == 7 and time.monotonic() - t0 < 1
    recorder.stop(timeout=0.2)  # never started, queue full: returns at once-ish
