"""A work queue of job keys with client-go's workqueue semantics.

- A key is queued once however many events arrive for it (dedupe).
- A key is handed to one worker at a time; events that arrive while it is processed queue it again for
  after `done`, so the worker always sees the newest state and no two workers race on one job.
- `add_rate_limited` re-queues a failed key after a per-key exponential back-off (base 5 ms, cap 60 s);
  `forget` resets that back-off once the key succeeds, or when its object is deleted.
- `add_after` re-queues a key after a fixed delay (retry-after, waiting for pods to go).
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections import deque
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)


class ShutDown(Exception):
    """The queue is shut down: workers should exit."""


class WorkQueue(Generic[K]):
    def __init__(
        self,
        base_delay: float = 0.005,
        max_delay: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.clock = clock
        self._cond = threading.Condition()
        self._queue: deque[K] = deque()
        self._dirty: set[K] = set()
        """Keys waiting to be processed (queued, or re-queued while processing)."""
        self._processing: set[K] = set()
        self._failures: dict[K, int] = {}
        self._delayed: list[tuple[float, int, K]] = []
        self._seq = itertools.count()
        self._shutdown = False

    # -- producers ----------------------------------------------------------------------------------

    def add(self, key: K) -> None:
        with self._cond:
            if self._shutdown or key in self._dirty:
                return
            self._dirty.add(key)
            if key not in self._processing:
                self._queue.append(key)
                self._cond.notify()

    def add_after(self, key: K, delay: float) -> None:
        if delay <= 0:
            self.add(key)
            return
        with self._cond:
            if self._shutdown:
                return
            heapq.heappush(self._delayed, (self.clock() + delay, next(self._seq), key))
            self._cond.notify()

    def add_rate_limited(self, key: K) -> float:
        """Re-queue `key` after its next back-off step; returns that delay in seconds."""
        with self._cond:
            failures = self._failures.get(key, 0)
            self._failures[key] = failures + 1
        delay = float(min(self.max_delay, self.base_delay * 2**failures))
        self.add_after(key, delay)
        return delay

    def forget(self, key: K) -> None:
        with self._cond:
            self._failures.pop(key, None)

    def failures(self, key: K) -> int:
        with self._cond:
            return self._failures.get(key, 0)

    # -- consumers ----------------------------------------------------------------------------------

    def get(self, timeout: float | None = None) -> K | None:
        """The next key to process (mark it `done` afterwards); None on timeout. Raises ShutDown."""
        deadline = None if timeout is None else self.clock() + timeout
        with self._cond:
            while True:
                if self._shutdown:
                    raise ShutDown
                self._promote_due()
                if self._queue:
                    key = self._queue.popleft()
                    self._dirty.discard(key)
                    self._processing.add(key)
                    return key
                now = self.clock()
                waits = [w for w in (
                    self._delayed[0][0] - now if self._delayed else None,
                    deadline - now if deadline is not None else None,
                ) if w is not None]
                if deadline is not None and now >= deadline:
                    return None
                self._cond.wait(max(min(waits), 0.001) if waits else None)

    def done(self, key: K) -> None:
        with self._cond:
            self._processing.discard(key)
            if key in self._dirty:
                self._queue.append(key)
                self._cond.notify()

    def shut_down(self) -> None:
        with self._cond:
            self._shutdown = True
            self._cond.notify_all()

    def __len__(self) -> int:
        with self._cond:
            return len(self._queue)

    def _promote_due(self) -> None:
        now = self.clock()
        while self._delayed and self._delayed[0][0] <= now:
            _, _, key = heapq.heappop(self._delayed)
            if key not in self._dirty:
                self._dirty.add(key)
                if key not in self._processing:
                    self._queue.append(key)
