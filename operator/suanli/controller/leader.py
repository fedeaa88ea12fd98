"""Leader election for the engine: a coordination.k8s.io Lease, as kube-scheduler does.

kopf peering pauses a standby replica's watch handlers, but the engine is a thread kopf does not manage; it
must not plan or bind unless this replica holds the Lease. The Lease is taken only when free or expired and
renewed every pass, so a dead leader is replaced after `duration` seconds and two leaders never overlap
by more than one pass.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from kubernetes import client
from kubernetes.client.exceptions import ApiException

log = logging.getLogger("suanli.leader")


class LeaseElector:
    def __init__(self, api: client.ApiClient, namespace: str, name: str, identity: str,
                 duration_seconds: int = 15, clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.coordination = client.CoordinationV1Api(api)
        self.namespace = namespace
        self.name = name
        self.identity = identity
        self.duration = duration_seconds
        self.clock = clock
        self.leading = False
        self._checked = 0.0

    def leads(self) -> bool:
        """Whether to act now; talks to the API server at most three times per Lease duration."""
        if time.monotonic() - self._checked >= self.duration / 3:
            self._checked = time.monotonic()
            self.try_lead()
        return self.leading

    def _body(self, now: datetime, transitions: int, acquired: datetime) -> dict[str, Any]:
        return {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": self.name, "namespace": self.namespace},
            "spec": {
                "holderIdentity": self.identity,
                "leaseDurationSeconds": self.duration,
                "acquireTime": acquired.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
                "renewTime": now.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
                "leaseTransitions": transitions,
            },
        }

    def try_lead(self) -> bool:
        """Acquire or renew the Lease; True while this replica may write."""
        now = self.clock()
        try:
            lease = self.coordination.read_namespaced_lease(self.name, self.namespace, _request_timeout=10)
        except ApiException as exc:
            if exc.status != 404:
                return self._set(False, f"cannot read the Lease: {exc.reason}")
            try:
                self.coordination.create_namespaced_lease(
                    self.namespace, cast(Any, self._body(now, 0, now)), _request_timeout=10)
            except ApiException as err:
                return self._set(False, f"lost the race to create the Lease: {err.reason}")
            return self._set(True, "created the Lease")
        spec = lease.spec
        holder = spec.holder_identity if spec else None
        renewed = (spec.renew_time or spec.acquire_time) if spec else None
        duration = (spec.lease_duration_seconds or self.duration) if spec else self.duration
        expired = renewed is None or now - renewed > timedelta(seconds=duration)
        if holder != self.identity and not expired:
            return self._set(False, f"{holder} leads")
        transitions = (spec.lease_transitions or 0) if spec else 0
        acquired = spec.acquire_time if spec and holder == self.identity and spec.acquire_time else now
        body = self._body(now, transitions + (holder != self.identity), acquired)
        body["metadata"]["resourceVersion"] = lease.metadata.resource_version if lease.metadata else None
        try:
            # Replace with the read resourceVersion: if another replica renewed meanwhile, we get 409.
            self.coordination.replace_namespaced_lease(self.name, self.namespace, cast(Any, body), _request_timeout=10)
        except ApiException as err:
            return self._set(False, f"Lease changed under us: {err.reason}")
        return self._set(True, "renewed the Lease" if holder == self.identity else f"took over from {holder}")

    def _set(self, leading: bool, why: str) -> bool:
        if leading != self.leading:
            log.info("%s leadership: %s", "acquired" if leading else "lost", why)
        self.leading = leading
        return leading
