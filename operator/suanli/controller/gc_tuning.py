"""The operator process's garbage-collector thresholds: young collections ~70x rarer than Python's default.

Every watch event and API response is decoded into hundreds of fresh dicts and lists, and Python's default
(a young collection every 700 net allocations, an older one every 10 of those) ran one every few pod events;
the older collections also traverse the thousands of node and pod objects the cache holds. Almost nothing they
find is garbage: decoded JSON has no reference cycles and is freed by reference counting. In the bench's
Suanli phase (bench/e2e.py, 1,000 nodes, 200 gangs of 8) py-spy ``--native`` put a quarter of the samples
that held the GIL in ``gc_collect_main``, and these thresholds took the operator's CPU from 6.2-6.6 to 5.4-5.8
seconds (docs/benchmarks.md). Cycles that do occur (exception tracebacks, asyncio internals) are still
collected, at most ~50,000 young objects late: a few MiB.
"""

from __future__ import annotations

import gc

THRESHOLDS = (50_000, 20, 20)
"""Allocations before a young collection; young collections before a middle one; middle before a full one
(a full one also waits, as always, until a quarter of the long-lived objects are new)."""


def tune_garbage_collector() -> None:
    """Apply THRESHOLDS to this process (`suanli run` does, at start-up; the collector stays enabled)."""
    gc.set_threshold(*THRESHOLDS)
