"""Leader election's timing rules on a fake Lease API and a fake monotonic clock."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from suanli.controller.leader import LeaseElector


class FakeLeases:
    """One Lease with resourceVersion preconditions, as CoordinationV1Api serves it."""

    def __init__(self) -> None:
        self.lease: client.V1Lease | None = None
        self.version = 0
        self.down = False

    def read_namespaced_lease(self, name: str, namespace: str, **_: Any) -> client.V1Lease:
        if self.down:
            raise ApiException(status=503, reason="unavailable")
        if self.lease is None:
            raise ApiException(status=404, reason="NotFound")
        return self.lease

    def _store(self, body: dict[str, Any]) -> None:
        self.version += 1
        spec = body["spec"]
        self.lease = client.V1Lease(
            metadata=client.V1ObjectMeta(name=body["metadata"]["name"], resource_version=str(self.version)),
            spec=client.V1LeaseSpec(
                holder_identity=spec["holderIdentity"],
                lease_duration_seconds=spec["leaseDurationSeconds"],
                renew_time=datetime.now(UTC),
                acquire_time=datetime.now(UTC),
                lease_transitions=spec["leaseTransitions"],
            ),
        )

    def create_namespaced_lease(self, namespace: str, body: dict[str, Any], **_: Any) -> None:
        if self.lease is not None:
            raise ApiException(status=409, reason="AlreadyExists")
        self._store(body)

    def replace_namespaced_lease(self, name: str, namespace: str, body: Any, **_: Any) -> None:
        if self.down:
            raise ApiException(status=503, reason="unavailable")
        if isinstance(body, client.V1Lease):
            self.lease = body
            return
        if body["metadata"].get("resourceVersion") != str(self.version):
            raise ApiException(status=409, reason="Conflict")
        self._store(body)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def elector(leases: FakeLeases, clock: Clock, identity: str) -> LeaseElector:
    e = LeaseElector(client.ApiClient(client.Configuration()), "ns", "suanli-engine", identity, monotonic=clock)
    e.coordination = leases  # type: ignore[assignment]
    return e


def test_the_holder_may_write_only_until_its_renew_deadline() -> None:
    leases, clock = FakeLeases(), Clock()
    a = elector(leases, clock, "a")
    assert a.try_acquire_or_renew() and a.may_write()
    leases.down = True  # partitioned: renewals fail from now on
    clock.now += 9.9
    with pytest.raises(ApiException):
        a.try_acquire_or_renew()
    assert a.may_write(), "still within the 10 s renew deadline"
    clock.now += 0.2
    assert not a.may_write(), "stops writing at the renew deadline, 5 s before the Lease can be taken"


def test_a_standby_takes_over_only_after_seeing_the_lease_unrenewed_for_a_whole_lease() -> None:
    leases, clock = FakeLeases(), Clock()
    a, b = elector(leases, clock, "a"), elector(leases, clock, "b")
    assert a.try_acquire_or_renew()
    assert not b.try_acquire_or_renew(), "held"
    clock.now += 14.0
    assert not b.try_acquire_or_renew(), "not yet: 14 s of the 15 s Lease observed"
    clock.now += 1.1
    assert b.try_acquire_or_renew() and b.may_write()
    assert not a.may_write(), "the old holder's own deadline passed long before"
    assert leases.lease is not None and leases.lease.spec.lease_transitions == 1


def test_renewals_reset_the_standbys_observation() -> None:
    leases, clock = FakeLeases(), Clock()
    a, b = elector(leases, clock, "a"), elector(leases, clock, "b")
    a.try_acquire_or_renew()
    for _ in range(10):
        clock.now += 2.0
        assert a.try_acquire_or_renew()
        assert not b.try_acquire_or_renew(), "a renewing holder is never taken over"


def test_the_holders_clock_is_never_compared_with_ours() -> None:
    """A renewTime far in the past (the holder's clock is behind) does not make the Lease look expired."""
    leases, clock = FakeLeases(), Clock()
    a, b = elector(leases, clock, "a"), elector(leases, clock, "b")
    a.try_acquire_or_renew()
    assert leases.lease is not None
    leases.lease.spec.renew_time = datetime(2001, 1, 1, tzinfo=UTC)
    assert not b.try_acquire_or_renew()


def test_a_lost_race_for_the_lease_is_not_leadership() -> None:
    leases, clock = FakeLeases(), Clock()
    a = elector(leases, clock, "a")
    assert a.try_acquire_or_renew()
    original = leases.replace_namespaced_lease

    def racing(name: str, namespace: str, body: Any, **kw: Any) -> None:
        leases.version += 1  # another replica wrote between our read and our write
        original(name, namespace, body, **kw)

    leases.replace_namespaced_lease = racing  # type: ignore[method-assign]
    clock.now += 2
    assert not a.try_acquire_or_renew() and not a.may_write(), "a 409 on renewal ends leadership at once"


def test_a_clean_stop_releases_the_lease() -> None:
    leases, clock = FakeLeases(), Clock()
    changes: list[bool] = []
    a = elector(leases, clock, "a")
    a.on_change = changes.append
    a.try_acquire_or_renew()
    a._notify()
    a.stop(release=True)
    assert leases.lease is not None and not leases.lease.spec.holder_identity
    assert changes == [True, False] and not a.may_write()
