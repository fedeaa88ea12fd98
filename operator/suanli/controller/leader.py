"""Leader election on a coordination.k8s.io Lease, with client-go's timing rules.

Only the holder plans, binds and writes. Three durations, as in client-go's leaderelection:
- the Lease lasts `lease_seconds` (15): a standby takes over only after it has seen the same Lease record,
  unrenewed, for that long *by its own clock* (the holder's renewTime comes from another machine's clock,
  so it is never compared with ours);
- the holder renews every `retry_seconds` (2) on its own thread, not between scheduling passes;
- the holder may write only until `renew_deadline_seconds` (10) after the start of its last successful
  renewal. That is shorter than the Lease, so a holder that cannot renew (partitioned, or frozen by
  SIGSTOP) stops writing at least 5 s before anyone may take over. `may_write` is checked by every request
  (controller/kubeapi.py), not once per pass.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, cast

from kubernetes import client
from kubernetes.client.exceptions import ApiException

log = logging.getLogger("suanli.leader")


def _stamp(now: datetime) -> str:
    return now.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class LeaseElector:
    def __init__(
        self,
        api: client.ApiClient,
        namespace: str,
        name: str,
        identity: str,
        lease_seconds: float = 15.0,
        renew_deadline_seconds: float = 10.0,
        retry_seconds: float = 2.0,
        monotonic: Callable[[], float] = time.monotonic,
        on_change: Callable[[bool], None] | None = None,
    ) -> None:
        if not retry_seconds < renew_deadline_seconds < lease_seconds:
            raise ValueError("leader election needs retry < renew deadline < lease duration")
        self.coordination = client.CoordinationV1Api(api)
        self.namespace = namespace
        self.name = name
        self.identity = identity
        self.lease_seconds = lease_seconds
        self.renew_deadline = renew_deadline_seconds
        self.retry = retry_seconds
        self.monotonic = monotonic
        self.on_change = on_change
        """Called with True when this replica starts leading and False when it stops (any thread)."""
        self._valid_until = float("-inf")
        self._was_leading = False
        self._observed: tuple[Any, ...] | None = None
        self._observed_at = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- what the rest of the operator asks ---------------------------------------------------------

    def may_write(self) -> bool:
        """True while this replica holds the Lease with time to spare (before its renew deadline)."""
        return self.monotonic() < self._valid_until

    @property
    def leading(self) -> bool:
        return self.may_write()

    # -- the renewal loop ---------------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="suanli-leader", daemon=True)
        self._thread.start()

    def stop(self, release: bool = True) -> None:
        """Stop renewing; with `release`, give the Lease up so a standby need not wait for it to expire."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.retry + 5)
        if release and self.may_write():
            self._valid_until = float("-inf")
            self._notify()
            try:
                lease = self.coordination.read_namespaced_lease(self.name, self.namespace, _request_timeout=5)
                if lease.spec and lease.spec.holder_identity == self.identity:
                    lease.spec.holder_identity = None
                    lease.spec.lease_duration_seconds = 1
                    self.coordination.replace_namespaced_lease(self.name, self.namespace, lease, _request_timeout=5)
            except Exception as exc:  # best effort: the Lease expires anyway
                log.info("could not release the Lease: %s", exc)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.try_acquire_or_renew()
            except Exception as exc:  # an API hiccup: the renew deadline decides what it costs
                log.warning("leader election: %s", exc)
            self._notify()
            self._stop.wait(self.retry)

    def _notify(self) -> None:
        leading = self.may_write()
        if leading != self._was_leading:
            self._was_leading = leading
            log.info("%s leadership of Lease %s/%s", "acquired" if leading else "lost", self.namespace, self.name)
            if self.on_change is not None:
                self.on_change(leading)

    def _body(self, transitions: int, acquired: str, resource_version: str | None) -> dict[str, Any]:
        body: dict[str, Any] = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": self.name, "namespace": self.namespace},
            "spec": {
                "holderIdentity": self.identity,
                "leaseDurationSeconds": int(self.lease_seconds),
                "acquireTime": acquired,
                "renewTime": _stamp(datetime.now(UTC)),
                "leaseTransitions": transitions,
            },
        }
        if resource_version:
            body["metadata"]["resourceVersion"] = resource_version
        return body

    def try_acquire_or_renew(self) -> bool:
        """One round: create, renew or take over the Lease. True when this replica holds it now."""
        started = self.monotonic()
        timeout = max(self.renew_deadline - self.retry, 1.0)
        try:
            lease = self.coordination.read_namespaced_lease(self.name, self.namespace, _request_timeout=timeout)
        except ApiException as exc:
            if exc.status != 404:
                raise
            now = _stamp(datetime.now(UTC))
            self.coordination.create_namespaced_lease(
                self.namespace, cast(Any, self._body(0, now, None)), _request_timeout=timeout
            )
            self._valid_until = started + self.renew_deadline
            return True
        spec = lease.spec or client.V1LeaseSpec()
        holder = spec.holder_identity or ""
        version = lease.metadata.resource_version if lease.metadata else None
        record = (holder, spec.renew_time, spec.lease_transitions, version)
        if record != self._observed:
            self._observed, self._observed_at = record, started
        duration = float(spec.lease_duration_seconds or self.lease_seconds)
        if holder and holder != self.identity and started < self._observed_at + duration:
            self._valid_until = float("-inf")
            return False  # someone else holds it and we have not seen it go stale for a whole Lease
        mine = holder == self.identity
        transitions = (spec.lease_transitions or 0) + (0 if mine else 1)
        acquired = _stamp(spec.acquire_time) if mine and spec.acquire_time else _stamp(datetime.now(UTC))
        body = self._body(transitions, acquired, version)
        try:
            # The read resourceVersion is a precondition: if another replica wrote meanwhile, we get 409.
            self.coordination.replace_namespaced_lease(
                self.name, self.namespace, cast(Any, body), _request_timeout=timeout
            )
        except ApiException as exc:
            if exc.status != 409:
                raise
            self._valid_until = float("-inf")
            return False
        if not mine:
            log.info("took the Lease over from %s", holder or "nobody")
        self._valid_until = started + self.renew_deadline
        return True
