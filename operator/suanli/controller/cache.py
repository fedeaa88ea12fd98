"""The cluster cache: what the feeds have seen, plus the reservations the scheduler has assumed.

Everything the engine decides from lives here, behind one short-held lock that no API call is ever made
under. Three rules keep the view honest:
- It never goes backwards: an event older (by resourceVersion) than what the cache holds is dropped, so a
  late watch event cannot undo a status the engine has just written (the writer stores what the API
  server answered) — kopf's rule of never deciding from a view older than one's own last write.
- Only pods that Suanli created for an AITrainingJob that exists (controller owner reference with the
  job's uid) belong to a job. A stranger's pod that merely names Suanli's scheduler holds nothing beyond
  what it is bound to, and is reported once so the engine can say so on it.
- A planned gang's cards are *assumed* (Kueue's assume/forget) from the moment it is planned until its
  pods are bound: its pods count on their planned nodes even while the watch still shows them unbound.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from ..api.aitrainingjob import AITrainingJob, JobPhase, name_problem, parse_job
from ..api.errors import SpecError
from ..inventory import Inventory, InventorySettings
from ..inventory.pods import PodKey

JobKey = tuple[str, str]
Obj = dict[str, Any]
KIND = "AITrainingJob"
UNPLACED_PHASES = frozenset({None, JobPhase.PENDING, JobPhase.RESTARTING, JobPhase.SCHEDULING})
"""Phases of a job the scheduler still has work for: waiting for a placement, or its gang mid-bind."""


def job_key(obj: Mapping[str, Any]) -> JobKey:
    meta = obj.get("metadata") or {}
    return (str(meta.get("namespace") or "default"), str(meta["name"]))


def _rv(obj: Mapping[str, Any]) -> int | None:
    """resourceVersion as a number (etcd revisions are), or None when absent or opaque."""
    value = (obj.get("metadata") or {}).get("resourceVersion")
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def _stale(new: Mapping[str, Any], old: Mapping[str, Any] | None) -> bool:
    """Whether `new` is no newer than `old` (an event we have seen, or one older than our own write)."""
    if old is None:
        return False
    a, b = _rv(new), _rv(old)
    return a is not None and b is not None and a <= b


def slim(obj: Obj) -> Obj:
    """``obj`` without ``metadata.managedFields``, the field-ownership record nothing here reads: it is ~45 % of
    a rendered pod's memory (8,000 of them: 379 MiB with it, 198 without; the 5,000-node, 1,000-gang bench
    peaked at 593 MiB). The same as controller-runtime's TransformStripManagedFields."""
    meta = obj.get("metadata")
    if not meta or "managedFields" not in meta:
        return obj
    return {**obj, "metadata": {k: v for k, v in meta.items() if k != "managedFields"}}


def owner_uid(pod: Mapping[str, Any]) -> str | None:
    """The uid of the AITrainingJob that controls this pod, if any."""
    for ref in (pod.get("metadata") or {}).get("ownerReferences") or ():
        ours = str(ref.get("apiVersion", "")).startswith("suanli.io/")
        if ref.get("kind") == KIND and ref.get("controller") and ours:
            return str(ref.get("uid") or "") or None
    return None


def parse(raw: Mapping[str, Any]) -> AITrainingJob | str:
    """The job, or what is wrong with it (field and fix) when it cannot be read or named."""
    try:
        job = parse_job(raw)
    except (ValidationError, SpecError) as exc:
        return str(exc)
    return name_problem(job.name) or job


def ready(node: Mapping[str, Any]) -> bool:
    for cond in (node.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "Ready":
            return bool(cond.get("status") == "True")
    return False


def not_ready_since(node: Mapping[str, Any]) -> datetime | None:
    """When a node that is not Ready stopped being so: its Ready condition's lastTransitionTime, written by the
    kubelet or the node controller. None when the node is Ready, or the time is missing or unreadable (then it
    counts as lost since ever: nothing says it was Ready lately)."""
    for cond in (node.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "Ready":
            if cond.get("status") == "True":
                return None
            try:
                since = datetime.fromisoformat(str(cond.get("lastTransitionTime")).replace("Z", "+00:00"))
            except ValueError:
                return None
            return since if since.tzinfo is not None else since.replace(tzinfo=UTC)
    return None


@dataclass
class Assumed:
    """A planned gang whose pods count on their planned nodes until they are bound."""

    uid: str
    pods: dict[PodKey, Obj] = field(default_factory=dict)
    """The gang's pods as rendered, with spec.nodeName set to the planned node."""


class ClusterCache:
    """Nodes, pods and jobs as last seen, the live inventory, and assumed reservations."""

    def __init__(
        self,
        settings: InventorySettings | None = None,
        scheduler_name: str = "suanli",
        notify: Callable[[Iterable[JobKey]], None] = lambda keys: None,
        on_stranger: Callable[[Obj], None] = lambda pod: None,
        on_job_deleted: Callable[[JobKey], None] = lambda key: None,
    ) -> None:
        self.lock = threading.RLock()
        self.inventory = Inventory(settings)
        self.scheduler_name = scheduler_name
        self.notify = notify
        """Told which jobs an event concerns (outside the lock): the engine queues them."""
        self.on_stranger = on_stranger
        self.on_job_deleted = on_job_deleted
        self._jobs: dict[JobKey, Obj] = {}
        self._unplaced: dict[JobKey, Obj] = {}
        """The jobs of `_jobs` in an UNPLACED_PHASES phase: all a scheduling cycle looks at (see unplaced_jobs)."""
        self._uids: dict[str, JobKey] = {}
        self._pods: dict[PodKey, Obj] = {}
        """Every pod's last-seen object (for resourceVersion ordering)."""
        self._owned: dict[str, dict[str, Obj]] = {}
        """Pods by owning job uid, then pod name: kept even before the job itself is seen."""
        self._node_ready: dict[str, bool] = {}
        self._not_ready_since: dict[str, datetime] = {}
        self._assumed: dict[JobKey, Assumed] = {}
        self._strangers: set[str] = set()
        """Uids of stranger pods already reported."""
        self._parsed: dict[tuple[str, str], AITrainingJob | str] = {}

    # -- feeds -------------------------------------------------------------------------------------

    def on_node(self, event: str | None, node: Obj) -> None:
        name = str(node["metadata"]["name"])
        with self.lock:
            before = (self._node_ready.get(name), self._usable(name))
            self._not_ready_since.pop(name, None)
            if event == "DELETED":
                self.inventory.remove_node(name)
                self._node_ready.pop(name, None)
            else:
                self.inventory.upsert_node(node)
                self._node_ready[name] = ready(node)
                if (since := not_ready_since(node)) is not None:
                    self._not_ready_since[name] = since
            changed = before != (self._node_ready.get(name), self._usable(name))
            keys = self._jobs_on(name) if changed else set()
        self.notify(keys)

    def on_pod(self, event: str | None, pod: Obj) -> None:
        pod = slim(pod)
        meta = pod.get("metadata") or {}
        key: PodKey = (str(meta.get("namespace") or "default"), str(meta["name"]))
        uid = owner_uid(pod)
        stranger = False
        with self.lock:
            if event != "DELETED" and _stale(pod, self._pods.get(key)):
                return
            if event == "DELETED":
                self._pods.pop(key, None)
                self.inventory.remove_pod(*key)
                self._strangers.discard(str(meta.get("uid")))
                if uid is not None:
                    owned = self._owned.get(uid)
                    if owned is not None:
                        owned.pop(key[1], None)
                        if not owned:
                            del self._owned[uid]
            else:
                self._pods[key] = pod
                self.inventory.upsert_pod(self._as_assumed(key, pod))
                if uid is not None:
                    self._owned.setdefault(uid, {})[key[1]] = pod
                stranger = self._is_stranger(pod, uid)
            job = self._uids.get(uid) if uid is not None else None
        if stranger:
            self.on_stranger(pod)
        if job is not None:
            self.notify([job])

    def on_job(self, event: str | None, job: Obj) -> None:
        job = slim(job)
        key = job_key(job)
        uid = str((job.get("metadata") or {}).get("uid") or "")
        with self.lock:
            if event == "DELETED":
                old = self._jobs.pop(key, None)
                self._unplaced.pop(key, None)
                if old is not None:
                    self._uids.pop(str(old["metadata"].get("uid") or ""), None)
                self._forget(key)
            else:
                current = self._jobs.get(key)
                if current is not None and current["metadata"].get("uid") == uid and _stale(job, current):
                    return
                if current is not None and current["metadata"].get("uid") != uid:
                    self._uids.pop(str(current["metadata"].get("uid") or ""), None)
                self._jobs[key] = job
                if (job.get("status") or {}).get("phase") in UNPLACED_PHASES:
                    self._unplaced[key] = job
                else:
                    self._unplaced.pop(key, None)
                self._uids[uid] = key
        if event == "DELETED":
            self.on_job_deleted(key)
        self.notify([key])

    def store_job(self, job: Obj) -> None:
        """Record a job object the API server returned to one of our writes (newer than any event)."""
        if job.get("metadata", {}).get("name"):
            self.on_job("MODIFIED", job)

    def store_pod(self, pod: Obj) -> None:
        """Record a pod the API server returned to our create: the view then holds it before the watch does."""
        if pod.get("metadata", {}).get("name"):
            self.on_pod("MODIFIED", pod)

    def _as_assumed(self, key: PodKey, pod: Obj) -> Obj:
        """An unbound pod of an assumed gang still holds its planned node's cards."""
        spec = pod.get("spec") or {}
        if spec.get("nodeName"):
            return pod
        for gang in self._assumed.values():
            planned = gang.pods.get(key)
            if planned is not None and owner_uid(pod) == gang.uid:
                return {**pod, "spec": {**spec, "nodeName": planned["spec"]["nodeName"]}}
        return pod

    def _is_stranger(self, pod: Obj, uid: str | None) -> bool:
        spec, meta = pod.get("spec") or {}, pod.get("metadata") or {}
        if spec.get("nodeName") or spec.get("schedulerName") != self.scheduler_name or meta.get("deletionTimestamp"):
            return False
        if uid is not None:
            return False  # ours (or an orphan of a deleted job, which the garbage collector removes)
        pod_uid = str(meta.get("uid") or "")
        if pod_uid in self._strangers:
            return False
        self._strangers.add(pod_uid)
        return True

    def _usable(self, node: str) -> int | None:
        found = self.inventory.get(node)
        return found.usable_cards if found else None

    def _jobs_on(self, node: str) -> set[JobKey]:
        return {
            self._uids[uid]
            for uid, pods in self._owned.items()
            if uid in self._uids and any((p.get("spec") or {}).get("nodeName") == node for p in pods.values())
        }

    # -- assume / forget ---------------------------------------------------------------------------

    def assume(self, key: JobKey, uid: str, pods: Iterable[Obj]) -> None:
        """Count a planned gang's pods on their planned nodes (they carry spec.nodeName) until bound."""
        with self.lock:
            gang = Assumed(uid, {(p["metadata"]["namespace"], p["metadata"]["name"]): p for p in pods})
            self._assumed[key] = gang
            for pod_key, planned in gang.pods.items():
                seen = self._pods.get(pod_key)
                if seen is None or not (seen.get("spec") or {}).get("nodeName"):
                    self.inventory.upsert_pod(planned)

    def finish(self, key: JobKey) -> None:
        """The gang is bound: its pods now hold their cards through the feed like any bound pod."""
        with self.lock:
            self._assumed.pop(key, None)

    def forget(self, key: JobKey) -> None:
        """Drop a gang's assumption: its planned-but-unbound pods stop holding cards."""
        with self.lock:
            self._forget(key)

    def _forget(self, key: JobKey) -> None:
        gang = self._assumed.pop(key, None)
        if gang is None:
            return
        for pod_key in gang.pods:
            seen = self._pods.get(pod_key)
            if seen is None:
                self.inventory.remove_pod(*pod_key)
            else:
                self.inventory.upsert_pod(seen)

    def assumed(self, key: JobKey) -> bool:
        with self.lock:
            return key in self._assumed

    # -- reads -------------------------------------------------------------------------------------

    def job(self, key: JobKey) -> Obj | None:
        with self.lock:
            return self._jobs.get(key)

    def jobs(self) -> list[tuple[JobKey, Obj]]:
        with self.lock:
            return list(self._jobs.items())

    def unplaced_jobs(self) -> list[tuple[JobKey, Obj]]:
        """The jobs with no placement yet (no status, Pending, Restarting) or mid-bind (Scheduling).

        Why an index: a scheduling cycle runs on every batch of events and looked at every job, placed or not —
        at 200 running gangs a fifth of the operator's CPU went to skipping them (yappi, issue 12)."""
        with self.lock:
            return list(self._unplaced.items())

    def job_keys(self) -> list[JobKey]:
        with self.lock:
            return list(self._jobs)

    def uid_of(self, key: JobKey) -> str | None:
        with self.lock:
            job = self._jobs.get(key)
            return str(job["metadata"].get("uid")) if job is not None else None

    def pods_of(self, uid: str) -> list[Obj]:
        """The pods a job (by uid) owns, any generation."""
        with self.lock:
            return list(self._owned.get(uid, {}).values())

    def pod(self, ns: str, name: str) -> Obj | None:
        with self.lock:
            return self._pods.get((ns, name))

    def node_ready(self, name: str) -> bool:
        with self.lock:
            return self._node_ready.get(name, False)

    def node_not_ready_since(self, name: str) -> datetime | None:
        """When a node that is not Ready stopped being so; None when it is Ready, deleted, unknown, or its
        condition gives no time."""
        with self.lock:
            return self._not_ready_since.get(name)

    def job_of(self, raw: Obj) -> AITrainingJob | str:
        """The job, or what is wrong with it (field and fix) when it cannot be read or named.

        Parsed once per job version (uid, resourceVersion): validating a job costs about a millisecond, and a
        running gang's job is read on every event of its pods. Models are never changed in place, so sharing
        them is safe."""
        meta = raw.get("metadata") or {}
        if not meta.get("resourceVersion"):
            return parse(raw)
        version = (str(meta.get("uid")), str(meta["resourceVersion"]))
        found = self._parsed.get(version)
        if found is None:
            found = parse(raw)
            if len(self._parsed) >= 8192:
                self._parsed.clear()
            self._parsed[version] = found
        return found

    def snapshot(self) -> Inventory:
        """A private copy of the inventory for one scheduling cycle (O(nodes + pods) dict copies)."""
        with self.lock:
            return self.inventory.snapshot()

    def phases(self) -> Counter[str]:
        with self.lock:
            return Counter(str((j.get("status") or {}).get("phase") or "Pending") for j in self._jobs.values())
