"""Writing what the engine decided: job statuses with optimistic concurrency, and events.

A status is written whole (a PUT of the status subresource) carrying the resourceVersion the decision was
made from, so the API server refuses it (409) if the job changed meanwhile — someone edited it, or another
replica wrote. The writer stores the object the API server answers in the cache, so the next decision starts
from our own write and a late watch event cannot take the view back. A 409 is not retried blindly: the job
is re-read and decided again.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from kubernetes.client.exceptions import ApiException

from ..api.aitrainingjob import AITrainingJob, AITrainingJobStatus
from ..api.base import GROUP, VERSION
from .cache import ClusterCache, JobKey
from .kubeapi import KubeApi, NotLeader

log = logging.getLogger("suanli.status")
Event = tuple[str, str, str]
"""(type, reason, message) of a Kubernetes event."""


class Conflict(Exception):
    """The job changed since the decision was made; it has been re-read, decide again."""


class StatusWriter:
    def __init__(self, kube: KubeApi, cache: ClusterCache, events: EventRecorder) -> None:
        self.kube = kube
        self.cache = cache
        self.events = events

    def write(self, job: AITrainingJob, status: AITrainingJobStatus, *events: Event) -> AITrainingJob | None:
        """Write `status` over the version of `job` it was decided from.

        Returns the job as stored (its new resourceVersion), None if the job is gone. Raises Conflict (after
        re-reading the job into the cache) when the job changed meanwhile.
        """
        key = (job.namespace, job.name)
        wire = status.model_dump(mode="json", by_alias=True, exclude_none=True)
        rv = job.metadata.get("resourceVersion")
        try:
            stored = self.kube.replace_job_status(job.namespace, job.name, wire, resource_version=rv)
        except ApiException as exc:
            if exc.status == 404:
                return None  # deleted meanwhile; the DELETED event drops it
            if exc.status == 409:
                self.refresh(key)
                raise Conflict(f"{key[0]}/{key[1]} changed since resourceVersion {rv}") from exc
            raise
        if stored:
            self.cache.store_job(stored)
        for event in events:
            self.events.record(job, *event)
        return job.model_copy(update={"status": status, "metadata": stored.get("metadata") or job.metadata})

    def refresh(self, key: JobKey) -> None:
        """Re-read one job into the cache (after a 409)."""
        try:
            self.cache.store_job(self.kube.read_job(*key))
        except ApiException as exc:
            if exc.status != 404:
                raise


class EventRecorder:
    """Kubernetes events on jobs and pods, sent by one background thread: they never delay a gang, and
    when the API server is slow they are dropped (bounded queue), never piled up."""

    def __init__(self, kube: KubeApi, component: str = "suanli", capacity: int = 1000) -> None:
        self.kube = kube
        self.component = component
        self._queue: queue.Queue[tuple[str, dict[str, Any]] | None] = queue.Queue(capacity)
        self._thread = threading.Thread(target=self._run, name="suanli-events", daemon=True)
        self.dropped = 0

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Send what is queued, for up to `timeout` seconds, then stop: the gangs bound just before a shutdown
        (a rollout, the next leader taking over) keep their Running events."""
        if not self._thread.is_alive():
            with contextlib.suppress(queue.Full):
                self._queue.put_nowait(None)
            return
        deadline = time.monotonic() + timeout
        with contextlib.suppress(queue.Full):
            self._queue.put(None, timeout=timeout)
        self._thread.join(max(0.0, deadline - time.monotonic()))

    def record(self, job: AITrainingJob, type_: str, reason: str, message: str) -> None:
        ref = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "AITrainingJob",
            "name": job.name,
            "namespace": job.namespace,
            "uid": job.metadata.get("uid"),
        }
        self._put(job.namespace, ref, type_, reason, message)

    def record_pod(self, pod: dict[str, Any], type_: str, reason: str, message: str) -> None:
        meta = pod.get("metadata") or {}
        ref = {"apiVersion": "v1", "kind": "Pod", "name": meta.get("name"),
               "namespace": meta.get("namespace"), "uid": meta.get("uid")}
        self._put(str(meta.get("namespace") or "default"), ref, type_, reason, message)

    def _put(self, ns: str, ref: dict[str, Any], type_: str, reason: str, message: str) -> None:
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        body = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": f"{ref['name']}.{uuid.uuid4().hex[:12]}", "namespace": ns},
            "involvedObject": ref,
            "reason": reason,
            "message": message[:1024],
            "type": type_,
            "count": 1,
            "firstTimestamp": now,
            "lastTimestamp": now,
            "source": {"component": self.component},
            "reportingComponent": self.component,
            "reportingInstance": self.component,
        }
        try:
            self._queue.put_nowait((ns, body))
        except queue.Full:
            self.dropped += 1

    def _run(self) -> None:
        while (item := self._queue.get()) is not None:
            ns, body = item
            try:
                self.kube.create(ns, "events", body)
            except NotLeader:
                continue
            except Exception as exc:  # best effort: an event must never stop the engine
                log.debug("event not recorded: %s", exc)
