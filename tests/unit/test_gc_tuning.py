"""The operator's garbage-collector thresholds: fewer collections, but cyclic garbage still bounded."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from suanli.controller.gc_tuning import THRESHOLDS, tune_garbage_collector


@pytest.fixture
def tuned() -> Iterator[None]:
    saved, enabled = gc.get_threshold(), gc.isenabled()
    gc.enable()
    gc.collect()
    try:
        tune_garbage_collector()
        yield
    finally:
        gc.set_threshold(*saved)
        if not enabled:
            gc.disable()


def test_thresholds_are_applied_and_the_collector_stays_on(tuned: None) -> None:
    assert gc.get_threshold() == THRESHOLDS
    assert gc.isenabled()


def test_cyclic_garbage_is_still_collected_without_an_explicit_collect(tuned: None) -> None:
    """Exception tracebacks and asyncio internals make reference cycles, which reference counting never
    frees: with the raised thresholds they must still go, automatically, within about one young collection."""
    alive = 0
    peak = 0

    class Node:
        __slots__ = ("__weakref__", "other")

        def __init__(self) -> None:
            nonlocal alive, peak
            alive += 1
            peak = max(peak, alive)
            self.other: Node | None = None

        def __del__(self) -> None:
            nonlocal alive
            alive -= 1

    for _ in range(20 * THRESHOLDS[0]):  # 1,000,000 pairs: 20 young collections' worth at least
        a, b = Node(), Node()
        a.other, b.other = b, a
        del a, b
    # Each pair is two tracked objects: a young collection runs before 2 x THRESHOLDS[0] pairs pile up.
    assert peak <= 2 * THRESHOLDS[0] + 1000, peak
    assert alive <= 2 * THRESHOLDS[0] + 1000, alive
    gc.collect()
    assert alive == 0
