"""An in-memory stand-in for the engine's KubeApi: stores objects with resourceVersions and uids, answers
409/404 as the API server does, and fails on command. Everything else in the engine is the real code."""

from __future__ import annotations

import copy
import itertools
import threading
from collections.abc import Callable
from typing import Any

from kubernetes.client.exceptions import ApiException

Obj = dict[str, Any]


class FakeKube:
    def __init__(self) -> None:
        self.objects: dict[tuple[str, str, str], Obj] = {}
        """(plural, namespace, name) -> object; jobs are under plural "aitrainingjobs"."""
        self._rv = itertools.count(100)
        self._uid = itertools.count(1)
        self._lock = threading.Lock()
        self.calls: list[tuple[str, str, str]] = []
        """(verb, plural, name) of every call, in order."""
        self.deletes: list[tuple[str, str, int | None]] = []
        """(plural, name, grace) of every delete that removed something."""
        self.fail: Callable[[str, str, str], ApiException | None] = lambda verb, plural, name: None
        """Return an exception to raise for a call, or None to let it through."""
        self.after: Callable[[str, str, str], None] = lambda verb, plural, name: None
        """Runs after a call succeeds (to make things happen mid-gang)."""
        self.bindings = 0
        self.gone: list[Obj] = []
        """Objects deleted, for tests to deliver as the watch's DELETED events."""
        self.status_log: list[Obj] = []
        """Every status written, in order."""

    # -- helpers for tests -------------------------------------------------------------------------

    def put_job(self, body: Obj) -> Obj:
        job = copy.deepcopy(body)
        job["metadata"].setdefault("uid", f"uid-{job['metadata']['name']}")
        job["metadata"]["resourceVersion"] = str(next(self._rv))
        self.objects[("aitrainingjobs", job["metadata"]["namespace"], job["metadata"]["name"])] = job
        return copy.deepcopy(job)

    def job(self, ns: str, name: str) -> Obj:
        return copy.deepcopy(self.objects[("aitrainingjobs", ns, name)])

    def pods(self, ns: str = "ns") -> dict[str, Obj]:
        return {k[2]: v for k, v in self.objects.items() if k[0] == "pods" and k[1] == ns}

    def _check(self, verb: str, plural: str, name: str) -> None:
        self.calls.append((verb, plural, name))
        error = self.fail(verb, plural, name)
        if error is not None:
            raise error

    # -- the KubeApi surface the engine uses --------------------------------------------------------

    def create(self, ns: str, plural: str, body: Obj) -> Obj:
        name = body["metadata"]["name"]
        self._check("create", plural, name)
        with self._lock:
            if (plural, ns, name) in self.objects:
                raise ApiException(status=409, reason="AlreadyExists")
            stored = copy.deepcopy(body)
            stored["metadata"].update(uid=f"u{next(self._uid)}", resourceVersion=str(next(self._rv)), namespace=ns)
            if plural != "events":
                self.objects[(plural, ns, name)] = stored
        self.after("create", plural, name)
        return copy.deepcopy(stored)

    def bind(self, ns: str, pod: str, node: str) -> None:
        self._check("bind", "pods", pod)
        with self._lock:
            stored = self.objects.get(("pods", ns, pod))
            if stored is None:
                raise ApiException(status=404, reason="NotFound")
            if stored["spec"].get("nodeName"):
                raise ApiException(status=409, reason="Conflict")
            stored["spec"]["nodeName"] = node
            stored["metadata"]["resourceVersion"] = str(next(self._rv))
            self.bindings += 1
        self.after("bind", "pods", pod)

    def read(self, ns: str, plural: str, name: str) -> Obj:
        self._check("get", plural, name)
        found = self.objects.get((plural, ns, name))
        if found is None:
            raise ApiException(status=404, reason="NotFound")
        return copy.deepcopy(found)

    def merge_patch(self, ns: str, plural: str, name: str, patch: Obj) -> Obj:
        self._check("patch", plural, name)
        with self._lock:
            current = self.objects.get((plural, ns, name))
            if current is None:
                raise ApiException(status=404, reason="NotFound")
            meta = patch.get("metadata") or {}
            expected = meta.get("resourceVersion")
            if expected is not None and expected != current["metadata"].get("resourceVersion"):
                raise ApiException(status=409, reason="Conflict")
            for field in ("annotations", "labels"):  # a merge patch: null removes a key
                if field in meta:
                    merged = {**(current["metadata"].get(field) or {}), **meta[field]}
                    current["metadata"][field] = {k: v for k, v in merged.items() if v is not None}
            if "data" in patch:  # a ConfigMap's keys merge, and null removes one
                merged = {**(current.get("data") or {}), **patch["data"]}
                current["data"] = {k: v for k, v in merged.items() if v is not None}
            current.update(copy.deepcopy({k: v for k, v in patch.items() if k not in ("metadata", "data")}))
            current["metadata"]["resourceVersion"] = str(next(self._rv))
            return copy.deepcopy(current)

    def delete(self, ns: str, plural: str, name: str, grace_seconds: int | None = None,
               uid: str | None = None) -> None:
        self._check("delete", plural, name)
        with self._lock:
            current = self.objects.get((plural, ns, name))
            if current is None:
                raise ApiException(status=404, reason="NotFound")
            if uid is not None and current["metadata"].get("uid") != uid:
                raise ApiException(status=409, reason="Conflict")
            del self.objects[(plural, ns, name)]
            self.deletes.append((plural, name, grace_seconds))
            self.gone.append(current)
        self.after("delete", plural, name)

    def read_job(self, ns: str, name: str) -> Obj:
        return self.read(ns, "aitrainingjobs", name)

    def replace_job_status(self, ns: str, name: str, status: Obj, resource_version: str | None = None) -> Obj:
        self._check("update", "aitrainingjobs/status", name)
        with self._lock:
            current = self.objects.get(("aitrainingjobs", ns, name))
            if current is None:
                raise ApiException(status=404, reason="NotFound")
            if resource_version is not None and resource_version != current["metadata"]["resourceVersion"]:
                raise ApiException(status=409, reason="Conflict")
            current["status"] = copy.deepcopy(status)
            current["metadata"]["resourceVersion"] = str(next(self._rv))
            self.status_log.append(copy.deepcopy(status))
            return copy.deepcopy(current)

    def delete_job(self, ns: str, name: str, uid: str | None = None) -> None:
        self.delete(ns, "aitrainingjobs", name, uid=uid)

