"""The engine under faults, with an in-memory API (fake_kube.py) and everything else real: cache, queue,
scheduling cycle, binder, phase machine, status writer. Each test feeds the engine as its watches would."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from suanli.api.aitrainingjob import JobPhase
from suanli.controller.cache import UNPLACED_PHASES
from suanli.controller.engine import Controller
from suanli.controller.scheduler import WAITING
from suanli.render.gang import PLAN_ANNOTATION, PLAN_VERSION_ANNOTATION, PLANNED_NODE_ANNOTATION
from suanli.render.ranktable import ASCEND_910_ANNOTATION
from suanli.settings import OperatorSettings

from .fake_kube import FakeKube

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
from fleet import node_dict

Obj = dict[str, Any]


def make_engine(settings: OperatorSettings | None = None, fake: FakeKube | None = None) -> tuple[Controller, FakeKube]:
    """An engine on four 8-card nodes; given `fake`, a new leader over the same API."""
    fake = fake or FakeKube()
    engine = Controller(client.ApiClient(client.Configuration()), settings, kube=fake)  # type: ignore[arg-type]
    for i in range(4):
        engine.on_node("ADDED", node_dict(f"n{i}", 1, "r0", "z0", "region-a"))
    return engine, fake


@pytest.fixture
def setup() -> tuple[Controller, FakeKube]:
    return make_engine()


def job(name: str = "gang", replicas: int = 4, priority: int = 0, **spec: Any) -> Obj:
    return {
        "apiVersion": "suanli.io/v1alpha1",
        "kind": "AITrainingJob",
        "metadata": {"name": name, "namespace": "ns", "uid": f"uid-{name}", "generation": 1,
                     "creationTimestamp": "2026-11-25T12:00:00Z"},
        "spec": {"replicas": replicas, "acceleratorsPerReplica": 8,
                 "candidates": [{"vendor": "nvidia", "model": "H100", "image": "img"}], "priority": priority, **spec},
        "status": {"phase": "Pending"},
    }


def submit(engine: Controller, fake: FakeKube, *bodies: Obj) -> None:
    for body in bodies:
        engine.on_job("ADDED", fake.put_job(body))


def sync(engine: Controller, fake: FakeKube, pod_phase: str | None = "Running") -> None:
    """What the watches would deliver now: every job and pod as stored (pods in `pod_phase` once bound),
    and every pod deleted since the last sync."""
    for obj in fake.gone:
        if obj.get("kind") == "Pod":
            engine.on_pod("DELETED", obj)
    fake.gone.clear()
    for (plural, _, _), obj in list(fake.objects.items()):
        if plural == "aitrainingjobs":
            engine.on_job("MODIFIED", obj)
        elif plural == "pods":
            pod = {**obj, "status": {"phase": pod_phase}} if obj["spec"].get("nodeName") and pod_phase else obj
            engine.on_pod("MODIFIED", pod)


def cycle(engine: Controller, fake: FakeKube, pod_phase: str | None = "Running") -> None:
    """One round: schedule, bind, report back, run the job workers."""
    engine.schedule()
    engine.drain()
    sync(engine, fake, pod_phase)
    engine.reconcile_queued()
    engine.drain()
    sync(engine, fake, pod_phase)


def free_cards(engine: Controller) -> int:
    inv = engine.inventory
    return sum(state.free_cards for n in inv.nodes() if (state := inv.state(n.name)))


def phase(fake: FakeKube, name: str) -> str | None:
    return (fake.job("ns", name).get("status") or {}).get("phase")


def test_gang_binds_whole_and_the_plan_is_persisted_first(setup: tuple[Controller, FakeKube]) -> None:
    engine, fake = setup
    submit(engine, fake, job())
    engine.schedule()
    engine.drain()
    assert len(fake.pods()) == 4 and all(p["spec"].get("nodeName") for p in fake.pods().values())
    assert [s["phase"] for s in fake.status_log] == ["Running"], "one status write per gang"
    running = fake.status_log[0]
    assert [r["node"] for r in running["placement"]] == [p["spec"]["nodeName"] for p in fake.pods().values()]
    first_pod = next(i for i, c in enumerate(fake.calls) if c[1] == "pods")
    service = next(i for i, c in enumerate(fake.calls) if c[1] == "services")
    assert service < first_pod, "the plan is persisted (on the Service) before any pod exists"
    stored = fake.objects[("services", "ns", "gang")]["metadata"]
    plan = json.loads(stored["annotations"][PLAN_ANNOTATION])
    assert [r["node"] for r in plan["placement"]] == [r["node"] for r in running["placement"]]
    assert {p["metadata"]["annotations"][PLAN_VERSION_ANNOTATION] for p in fake.pods().values()} == {
        stored["resourceVersion"]}, "each pod records the Service version it was made from"
    events = [body for _, body in list(engine.events._queue.queue)]  # the recorder's thread is not started
    assert [e["reason"] for e in events] == ["Running"], "one event per gang, as one status write"
    assert events[0]["message"].startswith("all 4 replicas bound; placed 4 replicas on H100 (nvidia)")
    assert free_cards(engine) == 0


def test_bind_failure_midway_rolls_back_the_whole_gang_and_backs_off(setup: tuple[Controller, FakeKube]) -> None:
    engine, fake = setup
    binds = iter(range(100))
    timeout = ApiException(status=500, reason="etcdserver: request timed out")
    fake.fail = lambda verb, plural, name: timeout if verb == "bind" and next(binds) == 2 else None
    submit(engine, fake, job())
    engine.schedule()
    engine.drain()
    assert fake.pods() == {}, "no pod of a half-bound gang survives"
    last = fake.status_log[-1]
    assert last["phase"] == "Pending" and last["reason"] == "BindFailed" and last["placement"] == []
    assert "etcdserver: request timed out" in last["message"]
    assert [body["reason"] for _, body in list(engine.events._queue.queue)] == ["Placed", "BindFailed"]
    assert free_cards(engine) == 32, "the assumption is forgotten"
    assert engine.metrics.bind_failures._value.get() == 1

    fake.fail = lambda *_: None
    sync(engine, fake)
    engine.schedule()
    engine.drain()
    assert fake.pods() == {}, "a gang that just failed to bind backs off instead of spinning"
    engine.scheduler._retry_at.clear()
    engine.schedule()
    engine.drain()
    assert len(fake.pods()) == 4 and fake.status_log[-1]["phase"] == "Running"


def test_competing_gangs_in_one_cycle_never_share_cards(setup: tuple[Controller, FakeKube]) -> None:
    engine, fake = setup
    submit(engine, fake, job("a", replicas=3), job("b", replicas=3))
    engine.schedule()
    engine.drain()
    by_job: dict[str, int] = {}
    for name in fake.pods():
        by_job[name.split("-g")[0]] = by_job.get(name.split("-g")[0], 0) + 1
    assert sorted(by_job.values()) == [3], "one gang whole, the other holds nothing"
    waiting = [s for s in fake.status_log if s.get("reason") == "Unschedulable"]
    assert waiting and "no room" in waiting[0]["message"]


def test_higher_priority_gang_goes_first_when_only_one_fits(setup: tuple[Controller, FakeKube]) -> None:
    engine, fake = setup
    high = job("high", replicas=3, priority=10)
    high["metadata"]["creationTimestamp"] = "2026-11-25T12:05:00Z"  # newer, yet first
    submit(engine, fake, job("low", replicas=3), high)
    engine.schedule()
    engine.drain()
    assert {name.split("-g")[0] for name in fake.pods()} == {"high"}


def test_a_job_the_planner_cannot_handle_fails_alone(setup: tuple[Controller, FakeKube]) -> None:
    """cpu "-1" passes older CRDs; it must not stop the next job from scheduling."""
    engine, fake = setup
    bad = job("bad", replicas=1)
    bad["spec"]["template"] = {"resources": {"requests": {"cpu": "-1"}}}
    good = job("good", replicas=1)
    good["metadata"]["creationTimestamp"] = "2026-11-25T12:05:00Z"
    submit(engine, fake, bad, good)
    cycle(engine, fake)
    assert phase(fake, "good") == "Running"
    status = fake.job("ns", "bad")["status"]
    assert status["phase"] == "Pending" and status["reason"] == "InvalidSpec"
    assert "spec.template.resources.requests.cpu" in status["message"]
    writes = len(fake.status_log)
    cycle(engine, fake)
    assert len(fake.status_log) == writes, "the same refusal is not written again"


def test_a_planner_crash_on_one_job_does_not_stop_the_others(
    setup: tuple[Controller, FakeKube], monkeypatch: pytest.MonkeyPatch
) -> None:
    engine, fake = setup
    import suanli.controller.scheduler as scheduler

    real = scheduler.plan

    def plan(inventory: Any, request: Any) -> Any:
        if request.key == "ns/cursed":
            raise ZeroDivisionError("a planner bug")
        return real(inventory, request)

    monkeypatch.setattr(scheduler, "plan", plan)
    submit(engine, fake, job("cursed", replicas=1, priority=5), job("fine", replicas=1))
    cycle(engine, fake)
    assert phase(fake, "fine") == "Running"
    cursed = fake.job("ns", "cursed")["status"]
    assert cursed["reason"] == "InvalidSpec" and "a planner bug" in cursed["message"]


def test_a_name_that_cannot_be_a_hostname_is_refused_once(setup: tuple[Controller, FakeKube]) -> None:
    engine, fake = setup
    submit(engine, fake, job("a.b", replicas=1), job("x" * 62, replicas=1))
    for _ in range(3):
        cycle(engine, fake)
    assert fake.pods() == {}
    for name in ("a.b", "x" * 62):
        status = fake.job("ns", name)["status"]
        assert status["reason"] == "InvalidSpec" and "DNS-1035" in status["message"]
    assert len(fake.status_log) == 2, "one refusal each, no retry loop"


def test_a_deleted_replica_restarts_the_whole_gang(setup: tuple[Controller, FakeKube]) -> None:
    engine, fake = setup
    submit(engine, fake, job(replicas=2))
    cycle(engine, fake)
    assert phase(fake, "gang") == "Running"
    gone = fake.objects.pop(("pods", "ns", "gang-g0-1"))
    engine.on_pod("DELETED", gone)
    engine.reconcile_queued()
    status = fake.job("ns", "gang")["status"]
    assert status["phase"] == "Restarting" and status["reason"] == "ReplicaLost" and status["restarts"] == 1
    assert "gang-g0-1" in status["message"]
    assert [d[1] for d in fake.deletes] == ["gang-g0-0"], "the rest of the gang goes too"
    assert fake.deletes[0][2] is None, "gracefully: the pod's own grace period"


def test_an_evicted_replica_being_deleted_counts_as_lost(setup: tuple[Controller, FakeKube]) -> None:
    engine, fake = setup
    submit(engine, fake, job(replicas=2))
    cycle(engine, fake)
    pod = fake.objects[("pods", "ns", "gang-g0-0")]
    evicted = {**pod, "metadata": {**pod["metadata"], "deletionTimestamp": "2026-11-25T12:10:00Z",
                                   "resourceVersion": "999999"}, "status": {"phase": "Running"}}
    engine.on_pod("MODIFIED", evicted)
    engine.reconcile_queued()
    assert fake.job("ns", "gang")["status"]["reason"] == "ReplicaLost"


def test_terminating_pods_keep_their_cards_until_gone(setup: tuple[Controller, FakeKube]) -> None:
    engine, fake = setup
    submit(engine, fake, job(replicas=4))
    cycle(engine, fake)
    old = {name: dict(p) for name, p in fake.pods().items()}
    fake.objects.pop(("pods", "ns", "gang-g0-3"))
    engine.on_pod("DELETED", old["gang-g0-3"])
    engine.reconcile_queued()  # restart: the other three are deleted gracefully
    assert fake.job("ns", "gang")["status"]["phase"] == "Restarting"
    for name in ("gang-g0-0", "gang-g0-1", "gang-g0-2"):  # the watch shows them terminating, still there
        pod = old[name]
        engine.on_pod("MODIFIED", {**pod, "metadata": {**pod["metadata"], "deletionTimestamp": "x",
                                                       "resourceVersion": "999999"},
                                   "status": {"phase": "Running"}})
    engine.schedule()
    engine.drain()
    assert not any(n.startswith("gang-g1") for n in fake.pods()), "the new gang waits for the cards"
    for name in ("gang-g0-0", "gang-g0-1", "gang-g0-2"):
        engine.on_pod("DELETED", old[name])
    sync(engine, fake)
    engine.schedule()
    engine.drain()
    assert sorted(n for n in fake.pods() if n.startswith("gang-g1")) == [f"gang-g1-{i}" for i in range(4)]


def test_a_strangers_pod_naming_our_scheduler_holds_nothing(setup: tuple[Controller, FakeKube]) -> None:
    engine, fake = setup
    warned: list[str] = []
    engine.cache.on_stranger = lambda pod: warned.append(pod["metadata"]["name"])
    squatter = {
        "metadata": {"name": "squat", "namespace": "other", "uid": "s1", "resourceVersion": "5",
                     "annotations": {"suanli.io/planned-node": "n0"}},
        "spec": {"schedulerName": "suanli", "containers": [
            {"name": "c", "resources": {"requests": {"nvidia.com/gpu": "8"}}}]},
        "status": {"phase": "Pending"},
    }
    engine.on_pod("ADDED", squatter)
    engine.on_pod("MODIFIED", {**squatter, "metadata": {**squatter["metadata"], "resourceVersion": "6"}})
    assert free_cards(engine) == 32
    assert warned == ["squat"], "reported once"
    submit(engine, fake, job(replicas=4))
    cycle(engine, fake)
    assert phase(fake, "gang") == "Running"


def test_a_late_watch_event_does_not_undo_our_status(setup: tuple[Controller, FakeKube]) -> None:
    engine, fake = setup
    body = job(replicas=1)
    submit(engine, fake, body)
    stale = fake.job("ns", "gang")
    engine.schedule()
    engine.drain()
    engine.on_job("MODIFIED", stale)  # the watch delivers the job as it was before our writes
    assert engine.cache.job(("ns", "gang"))["status"]["phase"] == "Running"
    engine.schedule()
    engine.drain()
    assert fake.bindings == 1, "the running gang is not planned again"


def test_a_status_conflict_rereads_and_decides_again(setup: tuple[Controller, FakeKube]) -> None:
    engine, fake = setup
    submit(engine, fake, job(replicas=2))
    cycle(engine, fake)
    # Someone changes the job behind the cache's back (a newer version the watch has not delivered).
    stored = fake.objects[("aitrainingjobs", "ns", "gang")]
    stored["metadata"]["resourceVersion"] = "500000"
    pod = fake.objects.pop(("pods", "ns", "gang-g0-0"))
    engine.on_pod("DELETED", pod)
    with pytest.raises(Exception, match="changed since"):
        engine.reconcile_queued()
    assert engine.cache.job(("ns", "gang"))["metadata"]["resourceVersion"] == "500000", "re-read after the 409"
    engine.queue.add(("ns", "gang"))
    engine.reconcile_queued()
    assert fake.job("ns", "gang")["status"]["reason"] == "ReplicaLost"


def test_a_resumed_gang_reserves_its_cards_before_anything_is_planned(setup: tuple[Controller, FakeKube]) -> None:
    engine, fake = setup
    resumed = job("resumed", replicas=2)
    resumed["status"] = {"phase": "Scheduling", "placement": [
        {"replica": 0, "node": "n0"}, {"replica": 1, "node": "n1"}], "candidateIndex": 0, "vendor": "nvidia",
        "model": "H100"}
    newcomer = job("newcomer", replicas=4, priority=100)
    submit(engine, fake, resumed, newcomer)
    engine.schedule()
    engine.drain()
    assert {p["spec"]["nodeName"] for n, p in fake.pods().items() if n.startswith("resumed")} == {"n0", "n1"}
    assert not any(n.startswith("newcomer") for n in fake.pods()), "n0 and n1 were the resumed gang's"
    assert phase(fake, "resumed") == "Running"


def test_a_job_deleted_while_binding_leaves_nothing_behind(setup: tuple[Controller, FakeKube]) -> None:
    engine, fake = setup
    submit(engine, fake, job(replicas=4))
    created = 0

    def delete_job_midway(verb: str, plural: str, name: str) -> None:
        nonlocal created
        if verb == "create" and plural == "pods":
            created += 1
            if created == 2:
                gone = fake.objects.pop(("aitrainingjobs", "ns", "gang"))
                engine.on_job("DELETED", gone)

    fake.after = delete_job_midway
    engine.schedule()
    engine.drain()
    assert fake.pods() == {}, "pods made before and after the deletion are removed"
    assert ("services", "ns", "gang") not in fake.objects
    sync(engine, fake)
    assert free_cards(engine) == 32, "nothing is held once the watch has seen the pods go"
    assert ("ns", "gang") not in engine.scheduler._tried and not engine.cache.assumed(("ns", "gang"))


def test_preemption_restarts_the_lowest_gang_without_using_up_its_restarts(setup: tuple[Controller, FakeKube]) -> None:
    engine, fake = setup
    low = job("low", replicas=2, failurePolicy={"maxRestarts": 0})
    submit(engine, fake, low, job("mid", replicas=2, priority=5))
    cycle(engine, fake)
    submit(engine, fake, job("urgent", replicas=2, priority=10))
    cycle(engine, fake)
    assert sorted(d[1] for d in fake.deletes) == ["low-g0-0", "low-g0-1"], "only the lowest-priority gang, whole"
    status = fake.job("ns", "low")["status"]
    assert status["phase"] == "Restarting" and status["reason"] == "Preempted"
    assert status["preemptions"] == 1 and status["restarts"] == 0, "maxRestarts 0, yet it restarts"
    assert "preempted by ns/urgent (priority 10)" in status["message"]
    assert fake.job("ns", "urgent")["status"]["reason"] == "Preempting"
    cycle(engine, fake)
    assert {n.split("-g")[0] for n in fake.pods()} == {"mid", "urgent"}
    assert engine.metrics.restarts.labels("ns", "Preempted")._value.get() == 1


def test_preemption_can_be_turned_off() -> None:
    engine, fake = make_engine(OperatorSettings(preemption=False))
    submit(engine, fake, job("low", replicas=4))
    cycle(engine, fake)
    submit(engine, fake, job("urgent", replicas=1, priority=10))
    cycle(engine, fake)
    assert fake.deletes == [] and fake.job("ns", "urgent")["status"]["reason"] == "Unschedulable"


def test_an_adopted_pod_must_be_this_jobs(setup: tuple[Controller, FakeKube]) -> None:
    """A pod of the same name made by someone else is never taken as ours."""
    engine, fake = setup
    fake.objects[("pods", "ns", "gang-g0-0")] = {
        "metadata": {"name": "gang-g0-0", "namespace": "ns", "uid": "impostor", "resourceVersion": "1"},
        "spec": {"containers": []},
    }
    submit(engine, fake, job(replicas=2))
    engine.schedule()
    engine.drain()
    assert fake.job("ns", "gang")["status"]["reason"] == "BindFailed"
    assert "does not belong to this job" in fake.job("ns", "gang")["status"]["message"]
    assert ("pods", "ns", "gang-g0-0") in fake.objects, "the stranger's pod is not deleted"


def test_a_mixed_gang_records_each_replicas_candidate_and_renders_each_vendor(
    setup: tuple[Controller, FakeKube],
) -> None:
    engine, fake = setup
    for i in range(2):
        engine.on_node("ADDED", node_dict(f"a{i}", 0, "r1", "z0", "region-a"))
    body = job("elastic", replicas=6)
    body["spec"]["allowMixedVendors"] = True
    body["spec"]["candidates"] = [{"vendor": "nvidia", "image": "cuda"}, {"vendor": "huawei", "image": "cann"}]
    submit(engine, fake, body)
    engine.schedule()
    engine.drain()
    placed = next(s for s in fake.status_log if s["phase"] == "Running")
    assert "vendor" not in placed and placed["model"] == "mixed"
    assert "4 H100 (nvidia) + 2 Ascend910B (huawei)" in placed["message"]
    by_node = {r["node"]: r["candidateIndex"] for r in placed["placement"]}
    assert by_node == {"n0": 0, "n1": 0, "n2": 0, "n3": 0, "a0": 1, "a1": 1}
    images = {p["spec"]["nodeName"]: p["spec"]["containers"][0]["image"] for p in fake.pods().values()}
    assert images == {n: ("cuda" if n.startswith("n") else "cann") for n in by_node}
    assert fake.status_log[-1]["phase"] == "Running"
    assert not any(c[1] == "configmaps" and c[2].startswith("rings-config-") for c in fake.calls), "no HCCL table"


def test_nodes_freed_by_preemption_are_held_for_the_preempting_job(setup: tuple[Controller, FakeKube]) -> None:
    engine, fake = setup
    submit(engine, fake, job("low", replicas=2), job("mid", replicas=2, priority=5))
    cycle(engine, fake)
    low_nodes = {p["spec"]["nodeName"] for n, p in fake.pods().items() if n.startswith("low")}
    submit(engine, fake, job("urgent", replicas=2, priority=10))
    engine.schedule()
    engine.reconcile_queued()  # the victim's worker restarts it; its pods are deleted (gracefully)
    deleted = [d[1] for d in fake.deletes]
    assert sorted(deleted) == ["low-g0-0", "low-g0-1"]
    # The watch reports one victim pod gone; the other is still terminating.
    engine.on_pod("DELETED", {"metadata": {"name": deleted[0], "namespace": "ns",
                                           "ownerReferences": [{"kind": "AITrainingJob", "controller": True,
                                                                "apiVersion": "suanli.io/v1alpha1",
                                                                "uid": "uid-low"}]}})
    submit(engine, fake, job("tiny", replicas=1))  # would fit on the node just freed
    engine.schedule()
    engine.drain()
    assert not any(n.startswith("tiny") for n in fake.pods()), "held for urgent"
    tiny = fake.job("ns", "tiny")["status"]
    assert "held for a preempting job" in tiny["message"]
    engine.on_pod("DELETED", {"metadata": {"name": deleted[1], "namespace": "ns"}})
    sync(engine, fake)
    engine.schedule()
    engine.drain()
    urgent = {p["spec"]["nodeName"] for n, p in fake.pods().items() if n.startswith("urgent")}
    assert urgent == low_nodes


def test_per_job_state_goes_with_the_job(setup: tuple[Controller, FakeKube]) -> None:
    engine, fake = setup
    fake.fail = lambda verb, plural, name: ApiException(status=403, reason="Forbidden") if verb == "bind" else None
    submit(engine, fake, job(replicas=1))
    engine.schedule()
    engine.drain()
    key = ("ns", "gang")
    assert engine.scheduler._retry_at.get(key)
    gone = fake.objects.pop(("aitrainingjobs", "ns", "gang"))
    engine.on_job("DELETED", gone)
    engine.reconcile_queued()
    for state in (engine.scheduler._retry_at, engine.scheduler._failures, engine.scheduler._tried,
                  engine.scheduler._preempting):
        assert key not in state
    assert engine.queue.failures(key) == 0 and engine.cache.job(key) is None


def test_a_cycle_looks_only_at_jobs_that_still_need_a_placement(setup: tuple[Controller, FakeKube]) -> None:
    """Placed gangs are not re-examined on every cycle (at 200 running gangs that was a fifth of the operator's
    CPU); a job needing a placement again (a restart) or new, is; a deleted one is forgotten."""
    engine, fake = setup
    submit(engine, fake, job("a", replicas=1), job("b", replicas=1))
    cycle(engine, fake)
    assert phase(fake, "a") == phase(fake, "b") == "Running" and engine.cache.unplaced_jobs() == []
    submit(engine, fake, job("c", replicas=1))
    looked_at: list[tuple[str, str]] = []
    held_back = engine.scheduler._held_back
    engine.scheduler._held_back = lambda key, now: looked_at.append(key) or held_back(key, now)  # type: ignore[method-assign]
    engine.schedule()
    engine.drain()
    assert looked_at == [("ns", "c")] and phase(fake, "c") == "Running"
    sync(engine, fake)
    gone = fake.objects.pop(("pods", "ns", "a-g0-0"))
    engine.on_pod("DELETED", gone)
    engine.reconcile_queued()
    assert phase(fake, "a") == "Restarting"
    sync(engine, fake)
    assert [k for k, _ in engine.cache.unplaced_jobs()] == [("ns", "a")], "a restart needs a placement again"
    engine.on_job("DELETED", fake.objects.pop(("aitrainingjobs", "ns", "a")))
    assert engine.cache.unplaced_jobs() == []


def test_the_cycles_index_holds_every_phase_the_cycle_acts_on() -> None:
    assert {*WAITING, JobPhase.SCHEDULING} == UNPLACED_PHASES


def test_ready_replicas_is_written_at_most_once_a_second_per_job(setup: tuple[Controller, FakeKube]) -> None:
    """Each pod coming up is an event; a status write (and a watch event for every watcher) per pod is not."""
    import time

    engine, fake = setup
    submit(engine, fake, job(replicas=4))
    engine.schedule()
    engine.drain()
    sync(engine, fake, pod_phase="Pending")
    engine.reconcile_queued()
    writes = len(fake.status_log)
    for name, pod in fake.pods().items():  # the pods come up one event at a time
        engine.on_pod("MODIFIED", {**pod, "metadata": {**pod["metadata"], "resourceVersion": "9" + name[-1] * 6},
                                   "status": {"phase": "Running"}})
        engine.reconcile_queued()
    assert len(fake.status_log) == writes, "the count is held back while the pods come up"
    time.sleep(1.05)
    engine.reconcile_queued()
    assert fake.job("ns", "gang")["status"]["readyReplicas"] == 4, "the final count lands within a second"
    assert len(fake.status_log) - writes == 1, "in one write"


def test_a_job_whose_gang_cannot_be_made_does_not_preempt_others(setup: tuple[Controller, FakeKube]) -> None:
    """A job whose pods are refused (namespace being deleted, quota, admission) must not restart other gangs
    for room it cannot use — again and again, at every back-off."""
    engine, fake = setup
    refused = ApiException(status=403, reason="Forbidden")
    fake.fail = lambda verb, plural, name: refused if plural == "pods" and name.startswith("doomed") else None
    submit(engine, fake, job("doomed", replicas=4, priority=100))
    cycle(engine, fake)
    assert fake.job("ns", "doomed")["status"]["reason"] == "BindFailed"
    submit(engine, fake, job("victim", replicas=4))
    cycle(engine, fake)
    assert phase(fake, "victim") == "Running"
    for _ in range(3):  # its back-off over, it is planned again and again: no room, and no preemption
        engine.scheduler._retry_at.clear()
        engine.on_node("MODIFIED", node_dict("extra", 2, "r9", "z9", "region-b"))  # an inventory change
        cycle(engine, fake)
        assert not [d for d in fake.deletes if d[1].startswith("victim")], "the running gang is left alone"
    assert phase(fake, "victim") == "Running"
    assert fake.job("ns", "doomed")["status"]["reason"] == "Unschedulable"


def _interrupt(engine: Controller, fake: FakeKube, after_binds: int = 1) -> None:
    """Stop the engine mid-bind (as SIGTERM or a lost lease would) with `after_binds` pods bound."""
    def stop(verb: str, plural: str, name: str) -> None:
        if verb == "bind" and fake.bindings == after_binds:
            engine.binder.stop()
    fake.after = stop
    engine.schedule()
    engine.drain()
    fake.after = lambda *_: None


def _next_leader(fake: FakeKube) -> Controller:
    """A fresh engine over the same API, fed what its watches would list."""
    leader, _ = make_engine(fake=fake)
    sync(leader, fake, None)
    return leader


def test_a_gang_in_flight_at_shutdown_is_left_for_the_next_leader(setup: tuple[Controller, FakeKube]) -> None:
    """Stopping mid-bind neither rolls the gang back nor marks it BindFailed: its plan is persisted, and the
    next leader resumes it (the 5,000-node bench logged 'failed to bind, rolling back' for gangs cut short
    by SIGTERM)."""
    engine, fake = setup
    submit(engine, fake, job())
    _interrupt(engine, fake, after_binds=2)
    assert fake.status_log == [], "no status written: the plan is on the Service"
    assert not [c for c in fake.calls if c[0] == "delete"], "nothing rolled back"
    assert engine.metrics.bind_failures._value.get() == 0
    assert not engine.binder.busy(("ns", "gang"))
    made = {name: p["metadata"]["annotations"][PLANNED_NODE_ANNOTATION] for name, p in fake.pods().items()}

    # The next leader: a fresh engine fed what its watches list.
    leader = _next_leader(fake)
    leader.schedule()
    leader.drain()
    assert phase(fake, "gang") == "Running"
    pods = fake.pods()
    assert len(pods) == 4 and all(p["spec"]["nodeName"] == p["metadata"]["annotations"][PLANNED_NODE_ANNOTATION]
                                  for p in pods.values())
    assert all(pods[name]["metadata"]["annotations"][PLANNED_NODE_ANNOTATION] == node for name, node in made.items()), \
        "the pods made before the stop were finished where planned, not planned again"


@pytest.mark.parametrize(("plural", "name"), [("services", "gang"), ("configmaps", "gang-launch")])
def test_a_strangers_object_of_the_gangs_name_fails_the_gang_before_any_pod(
    setup: tuple[Controller, FakeKube], plural: str, name: str,
) -> None:
    """The Service (which carries the plan) and the launch ConfigMap go out before any pod: a name taken by
    someone else rolls the gang back with the reason, no pod is ever made, and the stranger's object stays."""
    engine, fake = setup
    stranger = {"metadata": {"name": name, "namespace": "ns", "uid": "other"}, "data": {"MASTER_ADDR": "evil"}}
    fake.objects[(plural, "ns", name)] = stranger
    submit(engine, fake, job(replicas=2))
    engine.schedule()
    engine.drain()
    status = fake.job("ns", "gang")["status"]
    assert status["reason"] == "BindFailed" and f"{plural[:-1]} ns/{name} already exists" in status["message"]
    assert not [c for c in fake.calls if c[1] == "pods"], "no pod created"
    assert fake.objects[(plural, "ns", name)] == stranger, "left alone"


def test_a_running_write_refused_with_a_conflict_is_resumed_not_replanned(
    setup: tuple[Controller, FakeKube],
) -> None:
    """The job changed while its gang was being bound, so the Running write is refused (409): the bound gang
    stays where it is and the next cycle resumes it from the Service's plan — no pod made again, none moved."""
    engine, fake = setup
    conflict = ApiException(status=409, reason="Conflict")
    fake.fail = lambda verb, plural, name: conflict if plural == "aitrainingjobs/status" else None
    submit(engine, fake, job(replicas=2))
    engine.schedule()
    engine.drain()
    assert fake.status_log == [] and phase(fake, "gang") == "Pending"
    bound = {name: p["spec"]["nodeName"] for name, p in fake.pods().items()}
    assert len(bound) == 2 and all(bound.values())
    fake.fail = lambda *_: None
    sync(engine, fake, None)
    creates = sum(1 for c in fake.calls if c[0] == "create" and c[1] == "pods")
    engine.schedule()
    engine.drain()
    assert phase(fake, "gang") == "Running"
    assert {name: p["spec"]["nodeName"] for name, p in fake.pods().items()} == bound
    assert sum(1 for c in fake.calls if c[0] == "create" and c[1] == "pods") == creates + 2, "adopted (409s)"
    assert not [c for c in fake.calls if c[0] == "delete"], "nothing rolled back"
    assert free_cards(engine) == 16


@pytest.mark.parametrize("tamper", ["edited", "deleted", "garbled", "other generation", "pod moved"])
def test_an_interrupted_gang_whose_plan_cannot_be_trusted_is_rolled_back_and_planned_again(
    setup: tuple[Controller, FakeKube], tamper: str,
) -> None:
    """Tenants may edit Services in their namespace, and the plan on one names the nodes a gang gets: a plan
    that was edited, is gone, cannot be read, is another gang's, or disagrees with a pod is not resumed. The
    pods made from it are deleted, and the job is planned afresh once they are gone."""
    engine, fake = setup
    submit(engine, fake, job(replicas=2))
    _interrupt(engine, fake)
    assert phase(fake, "gang") == "Pending" and len(fake.pods()) >= 1
    service = fake.objects[("services", "ns", "gang")]
    meta = service["metadata"]
    if tamper == "edited":  # moved to n3, which the user prefers; a merge patch bumps the resourceVersion
        plan = json.loads(meta["annotations"][PLAN_ANNOTATION])
        plan["placement"][1]["node"] = "n3"
        fake.merge_patch("ns", "services", "gang", {"metadata": {"annotations": {PLAN_ANNOTATION: json.dumps(plan)}}})
    elif tamper == "deleted":
        del fake.objects[("services", "ns", "gang")]
    elif tamper == "garbled":
        meta["annotations"][PLAN_ANNOTATION] = "{not json"
    elif tamper == "other generation":
        plan = json.loads(meta["annotations"][PLAN_ANNOTATION])
        meta["annotations"][PLAN_ANNOTATION] = json.dumps({**plan, "restarts": 3})
    else:  # a pod whose planned node is not the plan's
        pod = next(iter(fake.pods().values()))
        pod["metadata"]["annotations"][PLANNED_NODE_ANNOTATION] = "n3"
    leader = _next_leader(fake)
    leader.schedule()
    leader.drain()
    assert fake.pods() == {}, "every pod of the untrusted plan deleted"
    assert phase(fake, "gang") == "Pending", "nothing written: the job just waits to be planned"
    queued = [body for _, body in list(leader.events._queue.queue)]  # the recorder's thread is not started
    assert [b["reason"] for b in queued] == ["PlanDiscarded"] and "not resumed" in queued[0]["message"]
    sync(leader, fake, None)
    leader.schedule()
    leader.drain()
    assert phase(fake, "gang") == "Running", "planned afresh once the pods were gone"
    assert len(fake.pods()) == 2


def test_a_rolled_back_gang_is_not_resumed_while_the_watch_still_shows_its_pods(
    setup: tuple[Controller, FakeKube],
) -> None:
    """After a roll-back the watch may still show the deleted pods alive for a while: they are neither
    resumed (their plan was just refused) nor deleted again; the job waits until they are gone."""
    engine, fake = setup
    submit(engine, fake, job(replicas=2))
    fake.fail = lambda verb, plural, name: ApiException(status=500, reason="boom") if verb == "bind" else None
    engine.schedule()
    engine.drain()
    fake.fail = lambda *_: None
    assert fake.job("ns", "gang")["status"]["reason"] == "BindFailed" and fake.pods() == {}
    deletes = sum(1 for c in fake.calls if c[0] == "delete")
    # No sync: the watch lags, and the cache still holds the gang's pods as created, live.
    assert len(engine.cache.pods_of("uid-gang")) == 2
    engine.scheduler._retry_at.clear()  # the back-off is over before the watch catches up
    engine.schedule()
    engine.drain()
    assert sum(1 for c in fake.calls if c[0] == "delete") == deletes
    assert not [c for c in fake.calls if c[0] == "get" and c[1] == "services"], "no resume attempted"
    assert fake.pods() == {} and not engine.binder.busy(("ns", "gang"))
    sync(engine, fake, None)  # the DELETED events arrive: planned again
    engine.schedule()
    engine.drain()
    assert phase(fake, "gang") == "Running" and len(fake.pods()) == 2


def test_the_cache_keeps_no_managed_fields(setup: tuple[Controller, FakeKube]) -> None:
    """The field-ownership record is nearly half of a rendered pod's memory and nothing reads it; the
    5,000-node, 1,000-gang bench peaked at 593 MiB with it kept (goal: under 500)."""
    engine, fake = setup
    record = [{"manager": "kubectl", "operation": "Update", "fieldsV1": {"f:spec": {}}}]
    body = job(replicas=2)
    body["metadata"]["managedFields"] = record
    submit(engine, fake, body)
    cycle(engine, fake)
    name = next(iter(fake.pods()))
    pod = {**fake.pods()[name], "metadata": {**fake.pods()[name]["metadata"], "managedFields": record,
                                             "resourceVersion": "999999"}}
    engine.on_pod("MODIFIED", pod)
    assert "managedFields" not in engine.cache.pod("ns", name)["metadata"]
    assert "managedFields" not in engine.cache.job(("ns", "gang"))["metadata"]
    assert pod["metadata"]["managedFields"] == record, "the caller's object is not changed"
    assert phase(fake, "gang") == "Running"


def test_a_plan_too_large_for_the_service_goes_to_the_status(
    setup: tuple[Controller, FakeKube], monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An object's annotations hold 256 KiB in all: a plan larger than fits is written to the job's status
    (Scheduling) before any pod, as before, and a new leader resumes it from there."""
    from suanli.controller import plans

    engine, fake = setup
    monkeypatch.setattr(plans, "MAX_PLAN_BYTES", 100)
    # An earlier attempt's plan on the job's Service (a smaller gang, before the spec changed) must not stay.
    owner = {"apiVersion": "suanli.io/v1alpha1", "kind": "AITrainingJob", "name": "gang", "uid": "uid-gang",
             "controller": True}
    fake.objects[("services", "ns", "gang")] = {"metadata": {
        "name": "gang", "namespace": "ns", "uid": "s1", "resourceVersion": "7", "ownerReferences": [owner],
        "annotations": {PLAN_ANNOTATION: '{"placement": [{"replica": 0, "node": "n3"}]}'}}}
    submit(engine, fake, job())
    _interrupt(engine, fake, after_binds=2)
    assert [s["phase"] for s in fake.status_log] == ["Scheduling"]
    first_pod = next(i for i, c in enumerate(fake.calls) if c[1] == "pods")
    first_status = next(i for i, c in enumerate(fake.calls) if c[1] == "aitrainingjobs/status")
    assert first_status < first_pod, "the plan is persisted before any pod exists"
    assert PLAN_ANNOTATION not in (fake.objects[("services", "ns", "gang")]["metadata"].get("annotations") or {})
    planned = {str(r["replica"]): r["node"] for r in fake.status_log[0]["placement"]}
    leader = _next_leader(fake)
    leader.schedule()
    leader.drain()
    assert [s["phase"] for s in fake.status_log] == ["Scheduling", "Running"]
    assert {p["metadata"]["labels"]["suanli.io/replica"]: p["spec"]["nodeName"] for p in fake.pods().values()} \
        == planned


def test_a_rank_table_still_waiting_is_written_once_a_second_and_a_completed_one_at_once(
    setup: tuple[Controller, FakeKube],
) -> None:
    """An Ascend gang's table changes with every pod's IP and device annotation: a patch of a growing ConfigMap
    per pod event is held back while the table still waits, and the completed table, which HCCL waits for,
    goes out at once."""
    import time

    engine, fake = setup
    for i in range(2):
        engine.on_node("ADDED", node_dict(f"a{i}", 0, "r1", "z0", "region-a"))
    body = job("npu", replicas=2)
    body["spec"]["candidates"] = [{"vendor": "huawei", "model": "Ascend910B", "image": "cann"}]
    submit(engine, fake, body)
    engine.schedule()
    engine.drain()
    assert phase(fake, "npu") == "Running"
    sync(engine, fake, pod_phase="Pending")
    engine.reconcile_queued()

    def patches() -> int:
        return sum(1 for c in fake.calls if c[0] == "patch" and c[1] == "configmaps")

    before = patches()
    pods = sorted(fake.pods().values(), key=lambda p: p["metadata"]["name"])
    for i, pod in enumerate(pods):  # IPs arrive one pod event at a time
        pod = {**pod, "metadata": {**pod["metadata"], "resourceVersion": f"{800000 + i}"},
               "status": {"phase": "Running", "podIP": f"10.0.0.{i + 1}"}}
        fake.objects[("pods", "ns", pod["metadata"]["name"])] = pod
        engine.on_pod("MODIFIED", pod)
        engine.reconcile_queued()
    assert patches() == before, "held while the table still waits"
    time.sleep(1.05)
    engine.reconcile_queued()
    assert patches() == before + 1, "the waiting table's changes land within a second, in one write"
    table = fake.objects[("configmaps", "ns", "rings-config-npu")]["data"]
    assert '"status":"initializing"' in table["hccl.json"] and table["waiting"]

    for i, pod in enumerate(pods):  # the device plugin records each pod's cards: the table completes
        current = fake.objects[("pods", "ns", pod["metadata"]["name"])]
        record = {"pod_name": pod["metadata"]["name"], "server_id": current["metadata"]["uid"],
                  "host_ip": f"192.168.{i}.1", "super_pod_id": -1,
                  "devices": [{"device_id": str(d), "device_ip": f"10.{i}.0.{d}"} for d in range(8)]}
        annotated = {**current, "metadata": {**current["metadata"], "resourceVersion": f"{900000 + i}",
                                             "annotations": {**current["metadata"]["annotations"],
                                                             ASCEND_910_ANNOTATION: json.dumps(record)}}}
        fake.objects[("pods", "ns", pod["metadata"]["name"])] = annotated
        engine.on_pod("MODIFIED", annotated)
        engine.reconcile_queued()
    table = fake.objects[("configmaps", "ns", "rings-config-npu")]["data"]
    assert '"status":"completed"' in table["hccl.json"], "written at once, without waiting out a second"


def test_the_shared_launch_variables_are_made_before_the_pods_and_renewed_for_each_gang(
    setup: tuple[Controller, FakeKube],
) -> None:
    """The replicas' shared launch variables live in `<job>-launch` (envFrom): it exists before any pod, and a
    restarted gang gets it rewritten for its generation, keys the new gang does not have removed."""
    engine, fake = setup
    submit(engine, fake, job(replicas=2))
    cycle(engine, fake)
    first_pod = next(i for i, c in enumerate(fake.calls) if c[1] == "pods")
    launch = next(i for i, c in enumerate(fake.calls) if c[1] == "configmaps" and c[2] == "gang-launch")
    assert launch < first_pod
    data = fake.objects[("configmaps", "ns", "gang-launch")]["data"]
    assert data["SUANLI_GENERATION"] == "0" and data["WORLD_SIZE"] == "16"
    for pod in fake.pods().values():
        trainer = pod["spec"]["containers"][0]
        assert trainer["envFrom"] == [{"configMapRef": {"name": "gang-launch"}}]
        assert not {e["name"] for e in trainer["env"]} & set(data)
    data["STALE"] = "from an older operator"
    gone = fake.objects.pop(("pods", "ns", "gang-g0-1"))
    engine.on_pod("DELETED", gone)
    engine.reconcile_queued()
    assert phase(fake, "gang") == "Restarting"
    sync(engine, fake)
    cycle(engine, fake)
    assert phase(fake, "gang") == "Running" and {n[:7] for n in fake.pods()} == {"gang-g1"}
    data = fake.objects[("configmaps", "ns", "gang-launch")]["data"]
    assert data["SUANLI_GENERATION"] == "1" and "STALE" not in data


def test_a_request_cancelled_by_the_shutdown_leaves_the_gang_for_the_next_leader(
    setup: tuple[Controller, FakeKube], caplog: pytest.LogCaptureFixture,
) -> None:
    """The 5,000-node bench (third round) logged 'failed to bind, rolling back: ' with no reason for gangs in
    flight at SIGTERM: the launch ConfigMap's request, queued on the request pool, was cancelled by its
    shutdown. The roll-back's own requests were refused on the way out, so the gangs were left for the next
    leader all the same, but the log said otherwise; a failure while stopping is now a stop, said as one."""
    from concurrent.futures import CancelledError

    engine, fake = setup
    caplog.set_level("INFO", logger="suanli.binder")

    def cancelled_at_shutdown(verb: str, plural: str, name: str) -> Exception | None:
        if verb == "create" and name == "gang-launch":
            engine.binder.stop()
            return CancelledError()
        return None

    fake.fail = cancelled_at_shutdown
    submit(engine, fake, job())
    engine.schedule()
    engine.drain()
    assert fake.status_log == [], "no BindFailed: nothing written on the way out"
    assert not [c for c in fake.calls if c[0] == "delete"], "nothing rolled back"
    assert engine.metrics.bind_failures._value.get() == 0
    assert "failed to bind" not in caplog.text and "operator stopping" in caplog.text


def _not_ready(node: Obj, since: str | None) -> Obj:
    ready = {"type": "Ready", "status": "Unknown", "reason": "NodeStatusUnknown"}
    if since is not None:
        ready["lastTransitionTime"] = since
    return {**node, "status": {**node["status"], "conditions": [ready]}}


def _engine_at(now: list[datetime], grace: float = 60.0) -> tuple[Controller, FakeKube]:
    fake = FakeKube()
    engine = Controller(client.ApiClient(client.Configuration()), OperatorSettings(node_lost_grace_seconds=grace),
                        kube=fake, clock=lambda: now[0])  # type: ignore[arg-type]
    for i in range(4):
        engine.on_node("ADDED", node_dict(f"n{i}", 1, "r0", "z0", "region-a"))
    return engine, fake


def test_a_node_not_ready_within_its_grace_restarts_nothing_and_after_it_the_gang(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A kubelet restart or a late lease flips a node to not Ready for a while: the gang on it keeps running
    for settings.node_lost_grace_seconds after the node's Ready condition changed, then restarts on NodeLost."""
    caplog.set_level("INFO", logger="suanli.reconciler")
    t0 = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
    now = [t0]
    engine, fake = _engine_at(now)
    submit(engine, fake, job(replicas=2))
    cycle(engine, fake)
    assert phase(fake, "gang") == "Running"
    victim = fake.job("ns", "gang")["status"]["placement"][0]["node"]
    node = node_dict(victim, 1, "r0", "z0", "region-a")

    now[0] = t0 + timedelta(seconds=59)  # 59 s after the node went Unknown at t0
    engine.on_node("MODIFIED", _not_ready(node, "2026-11-30T12:00:00Z"))
    engine.reconcile_queued()
    assert phase(fake, "gang") == "Running" and not fake.deletes, "within the grace: nothing restarts"
    assert engine.inventory.get(victim).why_unschedulable == "not Ready", "but the node takes no new work"
    engine.reconciler.reconcile(("ns", "gang"))  # its pods' events, a resync: more reconciles, one log line
    assert caplog.text.count(f"node {victim} is not Ready") == 1

    engine.on_node("MODIFIED", node)  # back before the grace ran out
    now[0] = t0 + timedelta(seconds=120)
    engine.reconcile_queued()
    assert phase(fake, "gang") == "Running" and not fake.deletes, "a node Ready again is forgiven"

    engine.on_node("MODIFIED", _not_ready(node, "2026-11-30T12:02:00Z"))  # down again at t0 + 120 s
    engine.reconcile_queued()
    assert phase(fake, "gang") == "Running", "its grace starts anew"
    assert caplog.text.count(f"node {victim} is not Ready") == 2, "a new outage is logged again"
    now[0] = t0 + timedelta(seconds=180)
    engine.reconciler.reconcile(("ns", "gang"))  # as the job's re-queue at the end of the grace does (below)
    status = fake.job("ns", "gang")["status"]
    assert status["phase"] == "Restarting" and status["reason"] == "NodeLost" and status["badNodes"] == [victim]
    assert victim in status["message"]


@pytest.mark.parametrize("how", ["deleted", "no transition time"])
def test_a_deleted_node_or_one_without_a_transition_time_is_lost_at_once(how: str) -> None:
    now = [datetime(2026, 11, 30, 12, 0, tzinfo=UTC)]
    engine, fake = _engine_at(now)
    submit(engine, fake, job(replicas=2))
    cycle(engine, fake)
    victim = fake.job("ns", "gang")["status"]["placement"][0]["node"]
    node = node_dict(victim, 1, "r0", "z0", "region-a")
    if how == "deleted":
        engine.on_node("DELETED", node)
    else:  # nothing says when it stopped being Ready: it may have been down for long
        engine.on_node("MODIFIED", _not_ready(node, None))
    engine.reconcile_queued()
    assert fake.job("ns", "gang")["status"]["reason"] == "NodeLost"


def test_a_node_not_ready_rechecks_its_gang_when_the_grace_runs_out() -> None:
    """No event comes when the grace runs out: the job is queued again for that moment."""
    t0 = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
    engine, fake = _engine_at([t0 + timedelta(seconds=1)], grace=2.0)
    submit(engine, fake, job(replicas=2))
    cycle(engine, fake)
    victim = fake.job("ns", "gang")["status"]["placement"][0]["node"]
    engine.on_node("MODIFIED", _not_ready(node_dict(victim, 1, "r0", "z0", "region-a"), "2026-11-30T12:00:00Z"))
    engine.reconcile_queued()
    assert phase(fake, "gang") == "Running"
    assert engine.queue.get(timeout=0) is None, "nothing due yet"
    assert engine.queue.get(timeout=5) == ("ns", "gang"), "due when the last second of grace is over"


@pytest.mark.parametrize("case", ["new leader after the grace", "clock behind the node controller's"])
def test_the_grace_is_counted_from_the_node_not_from_when_the_operator_saw_it(case: str) -> None:
    """The grace comes from the Ready condition's time, so a leader that starts (or restarts) while a node is
    down does not grant it a fresh 60 s; a transition time ahead of the operator's clock gives no more than
    the grace."""
    t0 = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
    now = [t0]
    first, fake = _engine_at(now)
    submit(first, fake, job(replicas=2))
    cycle(first, fake)
    victim = fake.job("ns", "gang")["status"]["placement"][0]["node"]
    down = _not_ready(node_dict(victim, 1, "r0", "z0", "region-a"), "2026-11-30T12:00:00Z")
    if case == "new leader after the grace":
        now[0] = t0 + timedelta(seconds=61)
        engine = Controller(client.ApiClient(client.Configuration()), OperatorSettings(), kube=fake,
                            clock=lambda: now[0])  # type: ignore[arg-type]
        for i in range(4):
            engine.on_node("ADDED", down if f"n{i}" == victim else node_dict(f"n{i}", 1, "r0", "z0", "region-a"))
        sync(engine, fake)
        engine.reconcile_queued()
        assert fake.job("ns", "gang")["status"]["reason"] == "NodeLost", "down for 61 s: lost at once"
    else:
        now[0] = t0 - timedelta(seconds=3600)  # the operator's clock an hour behind
        first.on_node("MODIFIED", down)
        first.reconcile_queued()
        assert phase(fake, "gang") == "Running"
        assert first.queue.get(timeout=0) is None, "re-checked after the grace, not after an hour"
        now[0] = t0 - timedelta(seconds=3600 - 61)
        first.reconciler.reconcile(("ns", "gang"))
        assert fake.job("ns", "gang")["status"]["reason"] == "NodeLost"
